"""Reading what the user wrote: inventories (YAML, INI), vars files, extra vars, vault, host patterns.

provisioner/inventory.py puts these together into hosts; provisioner/config/settings.py checks the settings.
"""
