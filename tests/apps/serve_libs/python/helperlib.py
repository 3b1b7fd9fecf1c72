"""A module in a folder passed as `code_dirs` (like bundled dependencies), not in the function's folder."""

GREETING = "hello from helperlib"
