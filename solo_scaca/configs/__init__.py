"""Configs shipped with solo-scaca (on hydra's search path through the plugin)."""
