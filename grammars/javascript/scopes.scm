(function_declaration body: (_) @body) @scope
(generator_function_declaration body: (_) @body) @scope
(class_declaration body: (_) @body) @scope
(method_definition body: (_) @body) @scope
(variable_declarator value: [(arrow_function body: (statement_block) @body) (function_expression body: (_) @body)]) @scope
