(function_declaration body: (_) @body) @scope
(method_declaration body: (_) @body) @scope
(type_declaration (type_spec type: [(struct_type (field_declaration_list) @body) (interface_type) @body])) @scope
