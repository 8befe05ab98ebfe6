(class_definition name: (identifier) @name) @definition.class
(function_definition name: (identifier) @name) @definition.function
(module (expression_statement (assignment left: (identifier) @name) @definition.constant))
(ERROR (expression_statement (assignment left: (identifier) @name) @definition.constant)) @toplevel
