((chunk (variable_declaration (assignment_statement (expression_list
   value: (function_call name: (identifier) @_require)))) @import)
 (#eq? @_require "require"))

; For the workspace index: `require("a.b")` and `require "a.b"` anywhere.
((function_call
   name: (identifier) @_require
   arguments: (arguments . (string content: (string_content) @import.module)))
 (#eq? @_require "require"))
; The same, rooted at the statement so that a depth-limited query (per keystroke) finds it.
((variable_declaration (assignment_statement (expression_list
   value: (function_call
     name: (identifier) @_require
     arguments: (arguments . (string content: (string_content) @import.module))))))
 (#eq? @_require "require"))
