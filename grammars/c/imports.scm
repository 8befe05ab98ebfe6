(translation_unit (preproc_include) @import)
(translation_unit (preproc_ifdef (preproc_include) @import))

; For the workspace index.
(preproc_include path: (string_literal (string_content) @import.module))
(preproc_include path: (system_lib_string) @import.module)
