(program (package_declaration) @import)
(program (import_declaration) @import)

; For the workspace index: `import a.b.C;` and `import a.b.*;`.
(import_declaration (scoped_identifier name: (identifier) @import.name) @import.module)
(import_declaration (scoped_identifier) @import.module (asterisk))
