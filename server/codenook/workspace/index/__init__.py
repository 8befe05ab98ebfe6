"""The workspace index: every definition of the workspace's source files, kept up to date.

Cross-file context needs to know, on every keystroke and without parsing anything, where a
name is defined and what a file imports. So the index parses each source file once (then
again when it changes) and keeps per file its definitions and imports: signature lines and
the first lines of documentation, never bodies, so that the index of a 2,000-file
repository stays small and what it holds is what a prompt can use.

One module per concern: ``model`` (what an entry holds), ``files`` (which files count),
``extract`` (tree-sitter to entries), ``resolve`` (imports to files), ``store`` (the
thread-safe index of one folder) and ``worker`` (parsing in other processes).
"""

from codenook.workspace.index.extract import (
    IMPORT_DEPTH,
    MAX_SIGNATURE_LINES,
    extract,
    imports_of,
    index_files,
    iter_identifiers,
)
from codenook.workspace.index.files import (
    SKIP_DIRS,
    IgnoreRules,
    decode_source,
    is_inside,
    is_source_name,
    list_source_files,
    parse_gitignore,
    read_regular,
    read_source,
    walk_files,
)
from codenook.workspace.index.model import BuildStats, Definition, FileEntry, Import, Skipped
from codenook.workspace.index.resolve import module_candidates
from codenook.workspace.index.store import (
    DEFAULT_MAX_DEFINITIONS,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_FILES,
    Progress,
    WorkspaceIndex,
)

__all__ = [
    "DEFAULT_MAX_DEFINITIONS",
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_FILE_BYTES",
    "IMPORT_DEPTH",
    "MAX_SIGNATURE_LINES",
    "SKIP_DIRS",
    "BuildStats",
    "Definition",
    "FileEntry",
    "IgnoreRules",
    "Import",
    "Progress",
    "Skipped",
    "WorkspaceIndex",
    "decode_source",
    "extract",
    "imports_of",
    "index_files",
    "is_inside",
    "is_source_name",
    "iter_identifiers",
    "list_source_files",
    "module_candidates",
    "parse_gitignore",
    "read_regular",
    "read_source",
    "walk_files",
]
