-- :Codenook {subcommand}

local api = vim.api
local codenook = require('codenook')

local M = {}

local AGENT_TASK = 'codenook.agentTask'
local AGENT_UNDO = 'codenook.agentUndo'

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

--- Whether `client` may run agent tasks: the server offers them and the root is trusted.
local function agent_allowed(client)
  if not advertises(client, AGENT_TASK) then
    err(
      ('this server does not offer agent tasks: its executeCommandProvider has no %q. '):format(
        AGENT_TASK
      ) .. 'Update codenook to a version that has them, or turn on its setting agent.enabled.'
    )
    return false
  end
  if not codenook.trusted(client.root_dir) then
    err(
      ('agent tasks are off: the workspace root %s is not trusted. '):format(
        client.root_dir or '(none)'
      ) .. '`:Codenook trust` trusts it (:help codenook-trust).'
    )
    return false
  end
  return true
end

--- :Codenook agent [{task}]: run an agent task; without {task}, ask for it. `opts` are the
--- user command's (its range: the selection sent with the task).
function M.agent(text, opts)
  local client = need_client()
  if not client or not agent_allowed(client) then
    return
  end
  local agent = require('codenook.agent')
  local buf = api.nvim_get_current_buf()
  -- The selection is read now: the prompt below leaves visual mode.
  local range = agent.selection(buf, opts, client.offset_encoding)
  if text ~= '' then
    agent.start(client, text, buf, range)
    return
  end
  vim.ui.input({ prompt = 'codenook agent: ' }, function(input)
    if input and vim.trim(input) ~= '' then
      agent.start(client, vim.trim(input), buf, range)
    end
  end)
end
M.task = M.agent

--- :Codenook undo [{taskId}]: put back what the last agent task (or {taskId}) changed.
function M.undo(task_id)
  local client = need_client()
  if not client then
    return
  end
  if not advertises(client, AGENT_UNDO) then
    return err(('this server does not offer %q'):format(AGENT_UNDO))
  end
  require('codenook.agent').undo(client, task_id ~= '' and task_id or nil)
end

M.subcommands = {
  status = function()
    M.status()
  end,
  cancel = function()
    if codenook.cancel() == 0 then
      vim.notify('codenook: no code action or agent task is running', vim.log.levels.INFO)
    end
  end,
  agent = function(args, opts)
    M.agent(args, opts)
  end,
  task = function(args, opts)
    M.agent(args, opts)
  end,
  undo = function(args)
    M.undo(args)
  end,
  transcript = function(args)
    require('codenook.agent').open_transcript(args)
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

--- :Codenook completion: `agent`, `undo` and `transcript` only when a running server
--- advertises agent tasks (`task`, the old name of `agent`, is not offered).
function M.complete(arglead, cmdline)
  if cmdline:match('^%s*%S+%s+%S+%s') then
    return {}
  end
  local names = { 'status', 'cancel', 'trust' }
  local client = codenook.client()
  if client and advertises(client, AGENT_TASK) then
    vim.list_extend(names, { 'agent', 'transcript' })
  end
  if client and advertises(client, AGENT_UNDO) then
    names[#names + 1] = 'undo'
  end
  return vim.tbl_filter(function(n)
    return vim.startswith(n, arglead)
  end, names)
end

function M.run(opts)
  local sub, rest = opts.args:match('^%s*(%S+)%s*(.-)%s*$')
  local fn = sub and M.subcommands[sub]
  if not fn then
    local usage = ':Codenook status, cancel, trust [{root}], agent [{task}], undo or transcript'
    return err(sub and ('unknown subcommand %q; use %s'):format(sub, usage) or ('use ' .. usage))
  end
  fn(rest or '', opts)
end

return M
