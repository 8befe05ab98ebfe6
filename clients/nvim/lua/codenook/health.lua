-- :checkhealth codenook
local M = {}

function M.check()
  local h = vim.health
  local codenook = require('codenook')
  h.start('codenook')
  if vim.fn.has('nvim-0.11') == 0 then
    h.error('Neovim 0.11 or newer is needed (vim.lsp.config / vim.lsp.enable)')
    return
  end
  if vim.lsp.inline_completion and codenook.config.native ~= false then
    h.ok('ghost text: Neovim\'s vim.lsp.inline_completion')
  else
    h.ok('ghost text: extmarks drawn by codenook (Neovim 0.11 or native = false)')
  end
  if not vim.lsp.config.codenook or not vim.lsp.config.codenook.cmd then
    h.warn('require("codenook").setup{} has not run')
    return
  end
  local cmd = vim.lsp.config.codenook.cmd
  if type(cmd) == 'table' then
    if vim.fn.executable(cmd[1]) == 1 then
      h.ok('server command: ' .. table.concat(cmd, ' '))
    else
      h.error(
        ('server command %q is not executable'):format(cmd[1]),
        'run `make install` in the codenook checkout, or pass'
          .. ' cmd = { ".../.venv/bin/codenook", "serve" } to setup()'
      )
    end
  end
  local source = codenook.languages_source
  local filetypes = vim.lsp.config.codenook.filetypes
  if source == 'option' then
    h.ok('filetypes (the setup() option): ' .. table.concat(filetypes or {}, ', '))
  elseif source == 'server' then
    local names = vim.tbl_map(function(l)
      return l.name
    end, codenook.languages or {})
    h.ok(
      ('languages (from the server): %s; filetypes: %s'):format(
        table.concat(names, ', '),
        table.concat(filetypes or {}, ', ')
      )
    )
  elseif source == 'pending' then
    h.info('asking the server which languages it supports (`codenook languages --json`)')
  else
    h.error(
      'the server\'s languages are unknown: ' .. tostring(source),
      'fix cmd, or pass filetypes = { ... } to setup()'
    )
  end
  local opt = codenook.config.trusted
  local how = opt == nil and "Neovim's trust database (:trust, :Codenook trust)"
    or opt == true and 'every root (trusted = true)'
    or opt == false and 'no root (trusted = false)'
    or type(opt) == 'function' and 'the trusted() function of setup()'
    or 'the trusted list of setup(): ' .. table.concat(vim.tbl_map(tostring, opt), ', ')
  h.info('trusted workspace roots: ' .. how)
  for _, c in ipairs(vim.lsp.get_clients({ name = 'codenook' })) do
    if not c.root_dir then
      h.info('a server without a workspace root: nothing to index, no agent tasks')
    elseif codenook.trusted(c.root_dir) then
      h.ok(('workspace root %s is trusted: workspace indexing on'):format(c.root_dir))
    else
      h.warn(
        ('workspace root %s is not trusted: no workspace indexing, no agent tasks'):format(c.root_dir),
        '`:Codenook trust` in one of its buffers trusts it; see :help codenook-trust'
      )
    end
  end
  local client = codenook.client()
  if not client then
    h.info('no codenook server running; it starts for the filetypes above')
    return
  end
  local problem = codenook.last_problem()
  if problem then
    -- It may have been fixed since: a warning, not an error.
    local report = (problem.type == 1 or problem.type == 2) and h.warn or h.info
    report(
      ('last problem the server reported (%s): %s'):format(
        problem.code ~= '' and problem.code or '?',
        problem.message
      ),
      problem.setting and ('setting %s, see :help codenook-settings'):format(problem.setting) or nil
    )
  end
  local res = client:request_sync(codenook._stats_method, vim.empty_dict(), 3000)
  local stats = res and res.result
  if type(stats) ~= 'table' then
    h.error('the server did not answer codenook/stats')
    return
  end
  if stats.state == 'failed' then
    h.error('model unavailable: ' .. tostring(stats.error), 'set model.path, see `codenook doctor`')
  else
    h.ok(('engine %s, model %s'):format(stats.state, tostring(stats.model)))
  end
end

return M
