(module (import_statement) @import)
(module (import_from_statement) @import)
(module (future_import_statement) @import)

; For the workspace index (any depth: `if TYPE_CHECKING:` and function-level imports count).
(import_statement name: (dotted_name) @import.module)
(import_statement name: (aliased_import name: (dotted_name) @import.module))
(import_from_statement module_name: (_) @import.module)
(import_from_statement
  module_name: (_) @import.module
  name: [(dotted_name) @import.name (aliased_import name: (dotted_name) @import.name)])
; `from m import *` (the name "*"), and `from m import X as Y` (X re-exported as Y).
(import_from_statement module_name: (_) @import.module (wildcard_import) @import.name)
(import_from_statement
  module_name: (_) @import.module
  name: (aliased_import name: (dotted_name) @import.name alias: (identifier) @import.alias))
