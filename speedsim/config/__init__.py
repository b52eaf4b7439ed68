"""Validated, frozen configuration objects and their YAML loading."""

from speedsim.config.errors import ConfigError
from speedsim.config.hw import Hardware, load_hardware, hardware_from_dict
from speedsim.config.workload import Workload, load_workload, workload_from_dict

__all__ = ["ConfigError", "Hardware", "Workload", "load_hardware", "load_workload",
           "hardware_from_dict", "workload_from_dict"]
