-- :Codenook status | cancel | trust [root] | agent [task] | undo | transcript. The server
-- itself starts with require('codenook').setup{}.
if vim.g.loaded_codenook then
  return
end
vim.g.loaded_codenook = 1

vim.api.nvim_create_user_command('Codenook', function(opts)
  require('codenook.commands').run(opts)
end, {
  nargs = '*',
  range = true, -- :'<,'>Codenook agent {task}: the selection goes with the task
  desc = 'codenook: status | cancel | trust [root] | agent [task] | undo | transcript',
  complete = function(arglead, cmdline)
    return require('codenook.commands').complete(arglead, cmdline)
  end,
})
