"""Rules for names, shared by the API's schemas, the record and the key commands (no database import)."""

from __future__ import annotations

import re

LINEAGE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
LINEAGE_NAME = re.compile(LINEAGE_NAME_PATTERN)
LINEAGE_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit; at most 100 characters"
