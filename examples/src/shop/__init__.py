"""The example service's code (Grace watches this tree: pre_boot_code_diff)."""
