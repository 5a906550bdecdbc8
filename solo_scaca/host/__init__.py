"""Fill-ins for what the host lacks or gets wrong outside a GPU cluster: CPU settings, DALI on
CPU, safe checkpoints, removal of the add-on, k-NN on any device, CIFAR from image folders,
image errors that name the file. The commands (``solo_scaca.cli``) use them."""
