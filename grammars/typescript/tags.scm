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
(abstract_class_declaration name: (_) @name) @definition.class
(function_signature name: (identifier) @name) @definition.function
(method_signature name: (property_identifier) @name) @definition.method
(abstract_method_signature name: (property_identifier) @name) @definition.method
(interface_declaration name: (_) @name) @definition.interface
(type_alias_declaration name: (_) @name) @definition.type
(enum_declaration name: (_) @name) @definition.enum
(internal_module name: (_) @name) @definition.module
(public_field_definition name: (property_identifier) @name) @definition.field
(property_signature name: (property_identifier) @name) @definition.field
