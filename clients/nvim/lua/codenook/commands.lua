-- :Codenook {subcommand}

local api = vim.api
local codenook = require('codenook')

local M = {}

local AGENT_TASK = 'codenook.agentTask'

local function err(msg)
  vim.notify('codenook: ' .. msg, vim.log.levels.ERROR)
end

local function need_client()
  local client = codenook.client()
  if not client then
    local filetypes = codenook.config.filetypes
    local hint = filetypes
        and ('open a file of one of these filetypes: ' .. table.concat(filetypes, ', '))
      or ('its languages are not known (' .. tostring(codenook.languages_source) .. ')')
    err('no codenook server is running; ' .. hint .. ' (see :checkhealth codenook)')
  end
  return client
end

local function advertises(client, command)
  local provider = client.server_capabilities.executeCommandProvider
  local commands = type(provider) == 'table' and provider.commands or {}
  return vim.list_contains(commands, command)
end

local function ms(v)
  return type(v) == 'number' and ('%d ms'):format(math.floor(v + 0.5)) or '?'
end

--- The lines :Codenook status prints for a codenook/stats answer.
function M.format_stats(s)
  local lines = {}
  local head = ('state: %s'):format(s.state or '?')
  if s.state ~= 'stopped' then
    head = head
      .. ('   queue: %s   last speed: %s tok/s'):format(s.queueLength or 0, s.tokensPerSecond or 0)
  end
  lines[#lines + 1] = head
  if s.error and s.error ~= vim.NIL then
    lines[#lines + 1] = 'error: ' .. tostring(s.error)
  end
  if s.model and s.model ~= vim.NIL then
    lines[#lines + 1] = ('model: %s (%s)'):format(s.model, tostring(s.architecture))
  end
  local c = s.completionCounters
  if type(c) == 'table' then
    lines[#lines + 1] = (
      'completions: %s requests, %s empty, %s typed-through, %s speculative hits'
    ):format(
      c.requests or 0,
      c.empty or 0,
      c.typedThrough or 0,
      c.speculativeHits or 0
    )
  end
  local e = s.counters
  if type(e) == 'table' then
    lines[#lines + 1] = ('engine: %s prompt tokens (%s cached), %s generated, %s cancelled'):format(
      e.prompt_tokens or 0,
      e.cached_tokens or 0,
      e.generated_tokens or 0,
      e.cancelled or 0
    )
  end
  local last = s.lastCompletion
  if type(last) == 'table' then
    lines[#lines + 1] = ('last completion: %s (prefill %s, decode %s), stop: %s'):format(
      ms(last.total_ms),
      ms(last.prefill_ms),
      ms(last.decode_ms),
      tostring(last.stop_reason)
    )
  end
  return lines
end

function M.status()
  local client = need_client()
  if not client then
    return
  end
  local res, why = client:request_sync(codenook._stats_method, vim.empty_dict(), 3000)
  if not res then
    return err('codenook/stats got no answer: ' .. tostring(why))
  elseif res.err then
    return err('codenook/stats failed: ' .. tostring(res.err.message))
  end
  local version = (client.server_info or {}).version or ''
  local chunks = { { 'codenook ', 'Title' }, { version, 'Comment' } }
  for _, line in ipairs(M.format_stats(res.result or {})) do
    chunks[#chunks + 1] = { '\n' .. line }
  end
  api.nvim_echo(chunks, true, {})
end

function M.task(text)
  local client = need_client()
  if not client then
    return
  end
  if text == '' then
    return err('usage: :Codenook task {what to do}')
  end
  if not advertises(client, AGENT_TASK) then
    return err(
      ('this server does not offer agent tasks: its executeCommandProvider has no %q. '):format(
        AGENT_TASK
      ) .. 'Update codenook to a version that has them.'
    )
  end
  if not codenook.trusted(client.root_dir) then
    return err(
      ('agent tasks are off: the workspace root %s is not trusted. '):format(
        client.root_dir or '(none)'
      ) .. '`:Codenook trust` trusts it (:help codenook-trust).'
    )
  end
  local buf = api.nvim_get_current_buf()
  local command = {
    title = 'codenook: ' .. text,
    command = AGENT_TASK,
    arguments = {
      {
        task = text,
        textDocument = { uri = vim.uri_from_bufnr(buf) },
        position = vim.lsp.util.make_position_params(0, client.offset_encoding).position,
      },
    },
  }
  client:exec_cmd(command, { bufnr = buf }, function(e, result)
    if e then
      return err('agent task failed: ' .. tostring(e.message))
    end
    local msg = type(result) == 'table' and (result.message or result.summary) or result
    vim.notify('codenook: agent task done' .. (type(msg) == 'string' and (': ' .. msg) or ''))
  end)
end

M.subcommands = {
  status = function()
    M.status()
  end,
  cancel = function()
    if codenook.cancel() == 0 then
      vim.notify('codenook: no code action is running', vim.log.levels.INFO)
    end
  end,
  task = function(args)
    M.task(args)
  end,
  trust = function(args)
    local ok, what = codenook.trust(args ~= '' and args or nil)
    if not ok then
      return err('cannot trust: ' .. what)
    end
    vim.notify(
      ('codenook: %s is trusted: workspace indexing on%s'):format(
        what,
        codenook.config.trusted == nil and " (recorded in Neovim's trust database)"
          or ' for this session'
      ),
      vim.log.levels.INFO
    )
  end,
}

--- :Codenook completion: `task` only when a running server advertises agent tasks.
function M.complete(arglead, cmdline)
  if cmdline:match('^%s*%S+%s+%S+%s') then
    return {}
  end
  local names = { 'status', 'cancel', 'trust' }
  local client = codenook.client()
  if client and advertises(client, AGENT_TASK) then
    names[#names + 1] = 'task'
  end
  return vim.tbl_filter(function(n)
    return vim.startswith(n, arglead)
  end, names)
end

function M.run(opts)
  local sub, rest = opts.args:match('^%s*(%S+)%s*(.-)%s*$')
  local fn = sub and M.subcommands[sub]
  if not fn then
    return err(
      (
        'unknown subcommand %q; use :Codenook status, :Codenook cancel, :Codenook trust'
        .. ' or :Codenook task {text}'
      ):format(
        sub or ''
      )
    )
  end
  fn(rest or '')
end

return M
