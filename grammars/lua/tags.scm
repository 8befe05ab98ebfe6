(function_declaration name: (identifier) @name) @definition.function
(function_declaration
  name: (dot_index_expression table: (_) @parent field: (identifier) @name)) @definition.function
(function_declaration
  name: (method_index_expression table: (_) @parent method: (identifier) @name)) @definition.method
(assignment_statement
  (variable_list . name: [(identifier) @name
                          (dot_index_expression table: (_) @parent field: (identifier) @name)])
  (expression_list . value: (function_definition))) @definition.function
(chunk (variable_declaration
  (assignment_statement (variable_list . name: (identifier) @name)) @definition.variable))
(chunk (assignment_statement (variable_list . name: (identifier) @name)) @definition.variable)
(ERROR (variable_declaration
  (assignment_statement (variable_list . name: (identifier) @name)) @definition.variable)) @toplevel
(ERROR (assignment_statement (variable_list . name: (identifier) @name)) @definition.variable) @toplevel
