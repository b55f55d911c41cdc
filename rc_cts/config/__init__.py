"""Configuration: the settings read from an app.config (the original's sections and option
names), and the sections rc-cts adds to one."""
from .settings import (CTS_SECTION, DEFAULT_CONFIG_PATH, STORES, WEB_SECTION, ConfigError, Opts, Settings,
                       find_config_file, read_config_file, service_limits_from_opts, settings_from_opts)

__all__ = ["CTS_SECTION", "DEFAULT_CONFIG_PATH", "STORES", "WEB_SECTION", "ConfigError", "Opts", "Settings",
           "find_config_file", "read_config_file", "service_limits_from_opts", "settings_from_opts"]
