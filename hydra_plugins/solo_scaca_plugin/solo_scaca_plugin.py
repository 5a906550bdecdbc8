"""Hydra plugin of solo-scaca: lets the host's unmodified ``main_pretrain.py`` (and any hydra
app) use ``method=swav_scaca`` and the configs shipped in ``solo_scaca/configs``.

Hydra imports every module under ``hydra_plugins`` before it runs an app's main function.
Importing ``solo_scaca`` registers the methods when the app has imported solo-learn (the host's
scripts do at their top), or as soon as it does; it imports nothing of the host itself, so
other hydra apps pay nothing.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

import solo_scaca  # noqa: F401  (registers the plugin's methods: now or when solo is imported)


class SoloSCACASearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Appends the plugin's packaged configs (after the app's own)."""
        search_path.append(provider="solo-scaca", path="pkg://solo_scaca.configs")
