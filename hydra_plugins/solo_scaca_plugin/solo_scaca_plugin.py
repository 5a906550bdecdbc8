"""Hydra plugin of solo-scaca: lets the host's unmodified ``main_pretrain.py`` (and any hydra
app) use ``method=swav_scaca`` and the configs shipped in ``solo_scaca/configs``.

Hydra imports every module under ``hydra_plugins`` before it runs an app's main function. When
that app has imported solo-learn (the host's scripts do at their top), the method is
registered; other hydra apps pay nothing.
"""

import sys

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

if "solo" in sys.modules:
    import solo_scaca  # noqa: F401  (registers swav_scaca)


class SoloSCACASearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Appends the plugin's packaged configs (after the app's own)."""
        search_path.append(provider="solo-scaca", path="pkg://solo_scaca.configs")
