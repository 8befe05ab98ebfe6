(function_declaration body: (_) @body) @scope
(assignment_statement (expression_list value: (function_definition body: (_) @body))) @scope
