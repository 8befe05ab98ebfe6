(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_declaration name: (_) @name) @definition.class
(method_definition name: (property_identifier) @name) @definition.method
(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function
(variable_declarator name: (identifier) @name value: (class)) @definition.class
(program (lexical_declaration (variable_declarator name: (identifier) @name) @definition.constant))
(program (export_statement
  (lexical_declaration (variable_declarator name: (identifier) @name) @definition.constant)))
; Top-level statements the parser could not fit into a `program` sit under an ERROR node
; (tree-sitter-typescript 0.23 gives some files an ERROR root); `@toplevel` asks extract.py
; to keep the match only when that ERROR is not inside anything but ERROR nodes.
(ERROR (lexical_declaration (variable_declarator name: (identifier) @name) @definition.constant)) @toplevel
(ERROR (export_statement
  (lexical_declaration (variable_declarator name: (identifier) @name) @definition.constant))) @toplevel
(assignment_expression
  left: (member_expression property: (property_identifier) @name)
  right: [(arrow_function) (function_expression)]) @definition.function
