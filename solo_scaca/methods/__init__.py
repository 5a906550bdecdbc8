"""Host methods with the add-on: one file per method (``<host method>_scaca``)."""
