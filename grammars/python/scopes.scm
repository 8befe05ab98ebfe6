(function_definition body: (_) @body) @scope
(class_definition body: (_) @body) @scope
