(source_file (use_declaration) @import)
(source_file (extern_crate_declaration) @import)

; For the workspace index.
(use_declaration argument: (identifier) @import.module)
(use_declaration argument: (scoped_identifier path: (_) @import.module name: (identifier) @import.name))
(use_declaration argument: (use_as_clause
  path: (scoped_identifier path: (_) @import.module name: (identifier) @import.name)))
(use_declaration argument: (scoped_use_list
  path: (_) @import.module
  list: (use_list [(identifier) @import.name
                   (scoped_identifier name: (identifier) @import.name)
                   (use_as_clause path: (identifier) @import.name)])))
(use_declaration argument: (use_wildcard (_) @import.module))
(mod_item name: (identifier) @import.module !body)
