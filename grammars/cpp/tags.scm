(function_definition
  declarator: [(function_declarator declarator: [(identifier) (field_identifier) (operator_name) (destructor_name)] @name)
               (pointer_declarator declarator: (function_declarator declarator: [(identifier) (field_identifier)] @name))
               (reference_declarator (function_declarator declarator: [(identifier) (field_identifier)] @name))]) @definition.function
(function_definition
  declarator: [(function_declarator declarator: (qualified_identifier
                 scope: (_) @parent name: [(identifier) (operator_name) (destructor_name)] @name))
               (pointer_declarator declarator: (function_declarator declarator: (qualified_identifier
                 scope: (_) @parent name: (identifier) @name)))
               (reference_declarator (function_declarator declarator: (qualified_identifier
                 scope: (_) @parent name: (identifier) @name)))]) @definition.method
(declaration
  declarator: [(function_declarator declarator: (identifier) @name)
               (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))
               (reference_declarator (function_declarator declarator: (identifier) @name))]) @definition.function
(field_declaration
  declarator: [(function_declarator declarator: [(field_identifier) (operator_name) (destructor_name)] @name)
               (pointer_declarator declarator: (function_declarator declarator: (field_identifier) @name))
               (reference_declarator (function_declarator declarator: (field_identifier) @name))]) @definition.method
(class_specifier name: (type_identifier) @name body: (_)) @definition.class
(struct_specifier name: (type_identifier) @name body: (_)) @definition.class
(union_specifier name: (type_identifier) @name body: (_)) @definition.class
(enum_specifier name: (type_identifier) @name body: (_)) @definition.enum
(type_definition declarator: (type_identifier) @name) @definition.type
(alias_declaration name: (type_identifier) @name) @definition.type
(namespace_definition name: (namespace_identifier) @name) @definition.module
(preproc_def name: (identifier) @name value: (_)) @definition.macro
(preproc_function_def name: (identifier) @name) @definition.macro
