-- Agent tasks: :Codenook agent {task}, its transcript buffer, progress, result and undo.
--
-- The server does the work. A task is one `workspace/executeCommand` (codenook.agentTask)
-- that is answered when the task ends; meanwhile the server streams `codenook/agentTranscript`
-- notifications, reports its steps with work-done progress, edits buffers with
-- `workspace/applyEdit` (left unsaved) and asks before running commands with
-- `window/showMessageRequest` (Neovim's own handler: vim.ui.select).

local api = vim.api
local codenook = require('codenook')

local M = {}

M.AGENT_TASK = 'codenook.agentTask'
M.AGENT_UNDO = 'codenook.agentUndo'
M.TRANSCRIPT = 'codenook/agentTranscript'

local REQUEST_CANCELLED = -32800

---@class codenook.AgentRun
---@field client_id integer
---@field task string
---@field args table the argument sent with codenook.agentTask
---@field request_id integer?
---@field task_id string? from the first transcript notification, or the answer
---@field token (string|integer)? its work-done progress token
---@field message string? the last progress message
---@field cancelled boolean? :Codenook cancel was asked for

---@type table<integer, codenook.AgentRun> the running task per client id
local runs = {}

---@class codenook.Transcript
---@field buf integer
---@field task_id string
---@field task string?
---@field last_kind string? kind of the last entry written
---@field empty boolean nothing written yet

---@type table<string, codenook.Transcript> per task id
local transcripts = {}
---@type string? task id of the last transcript created
local last_transcript

local function notify(msg, level)
  vim.notify(msg, level or vim.log.levels.INFO)
end

--- An error's message without the "codenook: " the server may have put in front.
local function reason(err)
  return (tostring(type(err) == 'table' and err.message or err):gsub('^codenook: ', ''))
end

local function options()
  local defaults = codenook.defaults.agent
  local opts = codenook.config.agent or {}
  return {
    window = opts.window == nil and defaults.window or opts.window,
    focus = opts.focus == nil and defaults.focus or opts.focus,
    echo = opts.echo == nil and defaults.echo or opts.echo,
  }
end

-- Arguments ------------------------------------------------------------------------------------

--- An LSP position for a byte column of `row` (0-based) in `enc`.
local function lsp_position(buf, row, col, enc)
  local line = api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
  col = math.max(0, math.min(col, #line))
  return { line = row, character = vim.str_utfindex(line, enc, col, false) }
end

--- The LSP range of the selection the command was run on, or nil: `opts` are the user
--- command's (range, line1, line2). Run from visual mode (`:'<,'>Codenook agent ...`), the
--- visual selection, character- or line-wise; a typed range (`:5,9Codenook agent ...`), whole
--- lines; from a mapping that runs while visual mode is on (<Cmd>), that selection. nil without
--- a range or for an empty one.
---@param buf integer
---@param opts { range?: integer, line1?: integer, line2?: integer }?
---@param enc string the client's offset encoding
---@return table?
function M.selection(buf, opts, enc)
  opts = opts or {}
  local mode = api.nvim_get_mode().mode
  local kind, s, e -- s, e: { 1-based row, 0-based byte column }
  if mode == 'v' or mode == 'V' or mode == '\22' then
    local a, b = vim.fn.getpos('v'), vim.fn.getpos('.')
    s, e = { a[2], a[3] - 1 }, { b[2], b[3] - 1 }
    if e[1] < s[1] or (e[1] == s[1] and e[2] < s[2]) then
      s, e = e, s
    end
    kind = mode
  elseif (opts.range or 0) > 0 then
    local ms, me = api.nvim_buf_get_mark(buf, '<'), api.nvim_buf_get_mark(buf, '>')
    if opts.range == 2 and ms[1] > 0 and ms[1] == opts.line1 and me[1] == opts.line2 then
      kind, s, e = vim.fn.visualmode(), ms, me
    else
      kind, s, e = 'V', { opts.line1, 0 }, { opts.line2, 0 }
    end
  else
    return nil
  end
  local start, stop
  if kind == 'V' then
    local last = api.nvim_buf_get_lines(buf, e[1] - 1, e[1], false)[1] or ''
    start = { line = s[1] - 1, character = 0 }
    stop = lsp_position(buf, e[1] - 1, #last, enc)
  else
    start = lsp_position(buf, s[1] - 1, s[2], enc)
    local line = api.nvim_buf_get_lines(buf, e[1] - 1, e[1], false)[1] or ''
    local col = math.min(e[2], #line)
    if vim.o.selection ~= 'exclusive' and col < #line then
      col = col + 1 + vim.str_utf_end(line, col + 1) -- past the last selected character
    end
    stop = lsp_position(buf, e[1] - 1, col, enc)
  end
  if start.line == stop.line and start.character == stop.character then
    return nil
  end
  return { start = start, ['end'] = stop }
end

--- The argument of codenook.agentTask: `{ task, uri?, version?, range? }`. `uri` and
--- `version` (the buffer's LSP version) name `buf` when the client has it open (the server
--- reads its unsaved text); `range` only with them.
---@param client vim.lsp.Client
---@param buf integer?
---@param task string
---@param range table? an LSP range (see M.selection)
function M.arguments(client, buf, task, range)
  local args = { task = task }
  if buf and api.nvim_buf_is_valid(buf) and client.attached_buffers[buf] then
    args.uri = vim.uri_from_bufnr(buf)
    local version = vim.lsp.util.buf_versions[buf]
    if type(version) == 'number' then
      args.version = version
    end
    args.range = range
  end
  return args
end

-- Transcript -----------------------------------------------------------------------------------

--- Prefix of each kind of whole entry. "model" text has none: it is streamed as it comes.
M.PREFIX = {
  task = 'Task: ',
  call = '▶ ',
  result = '◀ ',
  error = '✖ ',
  status = '• ',
  summary = '✔ ',
  ['end'] = '■ ',
}

local function transcript_name(task_id)
  local name = 'codenook://agent/' .. task_id
  local n = 1
  while vim.fn.bufexists(name) == 1 do
    n = n + 1
    name = ('codenook://agent/%s-%d'):format(task_id, n)
  end
  return name
end

--- A new transcript buffer: a scratch buffer (nofile, hidden when abandoned, no swap file),
--- not modifiable but by the plugin.
---@return codenook.Transcript
function M.new_transcript(task_id)
  local buf = api.nvim_create_buf(false, true)
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = false
  pcall(api.nvim_buf_set_name, buf, transcript_name(task_id))
  vim.b[buf].codenook_agent = task_id
  local t = { buf = buf, task_id = task_id, empty = true }
  transcripts[task_id] = t
  last_transcript = task_id
  return t
end

--- The windows showing `buf` whose view follows the end (cursor on the last line, or the last
--- line in view), for `count` lines before the change.
local function followers(buf, count)
  local out = {}
  local current = api.nvim_get_current_win()
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    local row = api.nvim_win_get_cursor(win)[1]
    if row >= count or (win ~= current and vim.fn.line('w$', win) >= count) then
      out[#out + 1] = win
    end
  end
  return out
end

--- Write one transcript notification into `t`'s buffer: "model" text appended where the
--- last model text ended (its newlines start lines), any other kind as a new entry with its
--- prefix, continuation lines indented under it. Windows that show the end keep showing it.
---@param t codenook.Transcript
---@param kind string
---@param text string
function M.render(t, kind, text)
  local buf = t.buf
  if not api.nvim_buf_is_valid(buf) then
    return
  end
  text = tostring(text or ''):gsub('\r\n?', '\n')
  local count = api.nvim_buf_line_count(buf)
  local follow = followers(buf, count)
  local last_line = api.nvim_buf_get_lines(buf, count - 1, count, false)[1] or ''
  vim.bo[buf].modifiable = true
  if kind == 'model' then
    if text ~= '' then
      local lines = vim.split(text, '\n', { plain = true })
      if t.empty or (t.last_kind == 'model') then
        api.nvim_buf_set_text(buf, count - 1, #last_line, count - 1, #last_line, lines)
      elseif last_line == '' then
        api.nvim_buf_set_lines(buf, count - 1, count, false, lines)
      else
        api.nvim_buf_set_lines(buf, count, count, false, lines)
      end
      t.empty, t.last_kind = false, kind
    end
  else
    local prefix = M.PREFIX[kind] or ('[' .. tostring(kind) .. '] ')
    local body = text:gsub('\n+$', '')
    local lines = vim.split(body, '\n', { plain = true })
    if lines[1]:sub(1, #prefix) ~= prefix then
      lines[1] = prefix .. lines[1]
    end
    local indent = (' '):rep(vim.fn.strdisplaywidth(prefix))
    for i = 2, #lines do
      lines[i] = lines[i] == '' and '' or (indent .. lines[i])
    end
    -- The first entry replaces the empty line of a new buffer; an entry after model text
    -- that ended with a newline takes that empty line.
    if t.empty or (t.last_kind == 'model' and last_line == '') then
      api.nvim_buf_set_lines(buf, count - 1, count, false, lines)
    else
      api.nvim_buf_set_lines(buf, count, count, false, lines)
    end
    t.empty, t.last_kind = false, kind
    if kind == 'task' then
      t.task = body
    end
  end
  vim.bo[buf].modifiable = false
  local last = api.nvim_buf_line_count(buf)
  for _, win in ipairs(follow) do
    if api.nvim_win_is_valid(win) then
      pcall(api.nvim_win_set_cursor, win, { last, 0 })
    end
  end
end

--- Show the transcript buffer `buf`: in a window that already shows a transcript, else in a
--- new one per the `agent.window` option (false: nowhere, unless `force`).
function M.show(buf, force)
  for _, win in ipairs(api.nvim_tabpage_list_wins(0)) do
    local b = api.nvim_win_get_buf(win)
    if b == buf or vim.b[b].codenook_agent then
      if b ~= buf then
        api.nvim_win_set_buf(win, buf)
      end
      pcall(api.nvim_win_set_cursor, win, { api.nvim_buf_line_count(buf), 0 })
      if force then
        api.nvim_set_current_win(win)
      end
      return win
    end
  end
  local opts = options()
  local config = opts.window
  if config == false and not force then
    return nil
  end
  if type(config) ~= 'table' then
    config = codenook.defaults.agent.window
  end
  local ok, win = pcall(api.nvim_open_win, buf, force or opts.focus == true, config)
  if not ok then
    notify('codenook: cannot open the agent transcript: ' .. tostring(win), vim.log.levels.WARN)
    return nil
  end
  vim.wo[win].wrap = true
  vim.wo[win].number = false
  vim.wo[win].relativenumber = false
  vim.wo[win].spell = false
  return win
end

--- Handler of `codenook/agentTranscript` { taskId, kind, text }.
function M.on_transcript(_, params, ctx)
  if type(params) ~= 'table' or params.taskId == nil then
    return
  end
  local task_id = tostring(params.taskId)
  local t = transcripts[task_id]
  local run = ctx and runs[ctx.client_id]
  if not t then
    if run and not run.task_id then
      run.task_id = task_id
    end
    t = M.new_transcript(task_id)
    M.show(t.buf)
  end
  M.render(t, tostring(params.kind or ''), params.text or '')
end

--- The transcript buffer of `task_id` (default: the last task's), or nil.
function M.transcript(task_id)
  local t = transcripts[task_id or last_transcript or '']
  return t and api.nvim_buf_is_valid(t.buf) and t.buf or nil
end

--- :Codenook transcript: show the last task's transcript and go to it.
function M.open_transcript(task_id)
  local buf = M.transcript(task_id ~= '' and task_id or nil)
  if not buf then
    return notify('codenook: no agent transcript yet', vim.log.levels.WARN)
  end
  M.show(buf, true)
end

-- Progress -------------------------------------------------------------------------------------

local function echo(msg)
  if not options().echo then
    return
  end
  local mode = api.nvim_get_mode().mode
  if mode:sub(1, 1) == 'c' or mode:sub(1, 1) == 'r' then
    return
  end
  local width = math.max(vim.v.echospace - 1, 10)
  if vim.fn.strdisplaywidth(msg) > width then
    msg = vim.fn.strcharpart(msg, 0, width - 1) .. '…'
  end
  api.nvim_echo({ { msg, 'ModeMsg' } }, false, {})
end

--- LspProgress: the running task's work-done progress (its title names the agent) gives its
--- token (for :Codenook cancel) and its step messages (echoed).
function M.on_progress(args)
  local data = args.data or {}
  local run = runs[data.client_id]
  local params = data.params
  if not run or type(params) ~= 'table' or type(params.value) ~= 'table' then
    return
  end
  local value = params.value
  if value.kind == 'begin' and not run.token then
    if type(value.title) == 'string' and value.title:find('agent', 1, true) then
      run.token = params.token
    end
  end
  if params.token ~= run.token then
    return
  end
  if type(value.message) == 'string' and value.message ~= '' and value.kind ~= 'end' then
    run.message = value.message
    echo('codenook agent: ' .. value.message)
  end
end

--- Whether `token` is the work-done progress of the agent task running on `client_id`.
function M.owns(client_id, token)
  local run = runs[client_id]
  return run ~= nil and run.token ~= nil and run.token == token
end

--- The running task of `client_id` (default: any), or nil.
---@return codenook.AgentRun?
function M.running(client_id)
  if client_id then
    return runs[client_id]
  end
  local _, run = next(runs)
  return run
end

--- Cancel the running agent tasks: with their progress's cancel (the Cancel button), or, when
--- the progress has not begun, by cancelling the request. Returns how many.
function M.cancel()
  local n = 0
  for client_id, run in pairs(runs) do
    local client = vim.lsp.get_client_by_id(client_id)
    if not client or client:is_stopped() then
      runs[client_id] = nil
    else
      if run.token ~= nil and client.progress.pending[run.token] then
        client:notify('window/workDoneProgress/cancel', { token = run.token })
      elseif run.request_id then
        client:cancel_request(run.request_id)
      end
      run.cancelled = true
      n = n + 1
    end
  end
  if n > 0 then
    echo('codenook agent: cancelling…')
  end
  return n
end

-- Result -----------------------------------------------------------------------------------------

--- 1-based first line where `current` (lines) differs from `original` (text), or 1.
local function first_change(original, current)
  local old = vim.split(original, '\n', { plain = true })
  for i = 1, math.max(#old, #current) do
    if old[i] ~= current[i] then
      return math.min(i, math.max(#current, 1))
    end
  end
  return 1
end

local function current_lines(fname)
  local buf = vim.fn.bufnr(fname)
  if buf > 0 and api.nvim_buf_is_loaded(buf) then
    return api.nvim_buf_get_lines(buf, 0, -1, false)
  end
  local ok, lines = pcall(vim.fn.readfile, fname)
  return ok and lines or {}
end

--- Quickfix items for the answer's `changes`: one per file, "created" or "edited", at the
--- first changed line.
function M.quickfix_items(changes, root)
  local items = {}
  for _, change in ipairs(type(changes) == 'table' and changes or {}) do
    local fname
    if type(change.uri) == 'string' then
      fname = vim.uri_to_fname(change.uri)
    elseif type(change.path) == 'string' then
      fname = root and (root .. '/' .. change.path) or change.path
    end
    if fname then
      local created = change.created == true
      local lnum = 1
      if not created and type(change.original) == 'string' then
        lnum = first_change(change.original, current_lines(fname))
      end
      items[#items + 1] = {
        filename = fname,
        lnum = lnum,
        col = 1,
        text = created and 'created' or 'edited',
      }
    end
  end
  return items
end

local function files(n)
  return n == 1 and '1 file' or (n .. ' files')
end

--- What the user is told when a task ends: message and level.
function M.format_result(result, task)
  local status = tostring(result.status or '?')
  local changes = type(result.changes) == 'table' and #result.changes or 0
  local function text(v)
    return type(v) == 'string' and v ~= '' and v or nil
  end
  if status == 'done' then
    local changed = changes > 0
        and (' (%s changed, unsaved: quickfix list; :Codenook undo reverts)'):format(files(changes))
      or ''
    return 'codenook agent: ' .. (text(result.summary) or ('finished ' .. task)) .. changed,
      vim.log.levels.INFO
  end
  local why = text(result.message) or text(result.summary) or status
  if why:sub(1, #status) ~= status then
    why = status .. ': ' .. why
  end
  local hint = changes > 0 and ' (quickfix list; :Codenook undo reverts)' or ''
  return 'codenook agent: ' .. why .. hint, vim.log.levels.WARN
end

local function finished(run, err, result)
  if runs[run.client_id] == run then
    runs[run.client_id] = nil
  end
  local client = vim.lsp.get_client_by_id(run.client_id)
  if err then
    if err.code == REQUEST_CANCELLED then
      notify('codenook agent: cancelled', vim.log.levels.WARN)
    else
      notify('codenook: agent task failed: ' .. reason(err), vim.log.levels.ERROR)
    end
  elseif type(result) == 'table' then
    run.task_id = run.task_id or (result.taskId and tostring(result.taskId))
    local items = M.quickfix_items(result.changes, client and client.root_dir)
    if #items > 0 then
      vim.fn.setqflist({}, ' ', { title = 'codenook agent: ' .. run.task, items = items })
    end
    local t = run.task_id and transcripts[run.task_id]
    if t then
      M.render(
        t,
        'end',
        ('%s after %s steps, %s changed'):format(
          tostring(result.status),
          tostring(result.steps or '?'),
          files(#items)
        )
      )
    end
    local msg, level = M.format_result(result, run.task)
    notify(msg, level)
  else
    notify('codenook: the agent task answered nothing', vim.log.levels.WARN)
  end
  api.nvim_exec_autocmds('User', {
    pattern = 'CodenookAgent',
    modeline = false,
    data = {
      task = run.task,
      taskId = run.task_id,
      err = err,
      result = result,
      transcript = M.transcript(run.task_id),
    },
  })
end

-- Commands ---------------------------------------------------------------------------------------

--- Send codenook.agentTask for `task` on `client`; `buf` is the active document, `range` the
--- selection (an LSP range) or nil. Checks nothing: see commands.lua for the guards.
---@return codenook.AgentRun?
function M.start(client, task, buf, range)
  local running = runs[client.id]
  if running then
    notify(
      ('codenook: an agent task is already running (%s); :Codenook cancel stops it'):format(
        running.task
      ),
      vim.log.levels.WARN
    )
    return nil
  end
  local args = M.arguments(client, buf, task, range)
  ---@type codenook.AgentRun
  local run = { client_id = client.id, task = task, args = args }
  runs[client.id] = run
  local params = { command = M.AGENT_TASK, arguments = { args } }
  local ok, id = client:request('workspace/executeCommand', params, function(err, result)
    finished(run, err, result)
  end, args.uri and buf or nil)
  if not ok then
    runs[client.id] = nil
    notify('codenook: the server has stopped; cannot run the agent task', vim.log.levels.ERROR)
    return nil
  end
  run.request_id = id
  -- Neovim drops the answer to a request that the server answers with RequestCancelled (after
  -- a $/cancelRequest): end the run when the request completes without its callback.
  api.nvim_create_autocmd('LspRequest', {
    group = api.nvim_create_augroup('codenook.agent', { clear = false }),
    callback = function(ev)
      local data = ev.data or {}
      if data.client_id ~= run.client_id or data.request_id ~= run.request_id then
        return false
      end
      if data.request and data.request.type == 'complete' then
        vim.schedule(function()
          if runs[run.client_id] == run then
            finished(run, { code = REQUEST_CANCELLED, message = 'cancelled' })
          end
        end)
        return true -- delete this autocmd
      end
    end,
  })
  echo('codenook agent: ' .. task)
  return run
end

--- Undo a task (default: the last one) with codenook.agentUndo; reports what was restored
--- and what was refused.
function M.undo(client, task_id)
  local params = {
    command = M.AGENT_UNDO,
    arguments = { task_id and { taskId = task_id } or vim.empty_dict() },
  }
  local root = client.root_dir and (vim.fs.normalize(client.root_dir) .. '/')
  local function name(uri)
    local fname = vim.uri_to_fname(uri)
    return root and vim.startswith(fname, root) and fname:sub(#root + 1)
      or vim.fn.fnamemodify(fname, ':~:.')
  end
  local ok = client:request('workspace/executeCommand', params, function(err, result)
    if err then
      notify('codenook: undo failed: ' .. reason(err), vim.log.levels.ERROR)
    elseif type(result) == 'table' then
      local restored = type(result.restored) == 'table' and result.restored or {}
      local refused = type(result.refused) == 'table' and result.refused or {}
      local names = {}
      for _, uri in ipairs(restored) do
        names[#names + 1] = name(uri)
      end
      local lines = {}
      if #names > 0 then
        lines[#lines + 1] = 'codenook agent: undone: ' .. table.concat(names, ', ')
      end
      for _, r in ipairs(refused) do
        lines[#lines + 1] = ('codenook agent: not undone: %s (%s)'):format(
          tostring(r.path or (r.uri and vim.uri_to_fname(r.uri)) or '?'),
          tostring(r.reason or 'refused')
        )
      end
      if #lines == 0 then
        local message = type(result.message) == 'string' and result.message ~= '' and result.message
        lines[1] = 'codenook agent: ' .. (message or 'nothing to undo')
      end
      notify(table.concat(lines, '\n'), #refused > 0 and vim.log.levels.WARN or vim.log.levels.INFO)
    end
    api.nvim_exec_autocmds('User', {
      pattern = 'CodenookUndo',
      modeline = false,
      data = { err = err, result = result },
    })
  end)
  if not ok then
    notify('codenook: the server has stopped', vim.log.levels.ERROR)
  end
end

--- Forget the runs of a client that stopped (its answer will never come).
function M.detach(client_id)
  runs[client_id] = nil
end

return M
