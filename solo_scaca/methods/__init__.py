"""Host methods with the add-on: one file per method (``swav_scaca``)."""
