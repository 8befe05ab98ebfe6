-- codenook for Neovim: AI inline completions from the codenook language server.
--
-- The server does the work; this plugin only registers it with vim.lsp, shows its
-- suggestions (Neovim 0.12's vim.lsp.inline_completion, or extmarks on 0.11), maps the
-- accept keys and reports the engine's state. See :help codenook.

local api = vim.api

local M = {}

local NAME = 'codenook'
local STATUS = 'codenook/status'
local STATS = 'codenook/stats'
local PROBLEM = 'codenook/problem'

M.defaults = {
  --- Command that starts the server. Default: `codenook serve` from PATH, else from the
  --- .venv of the codenook checkout this plugin lives in (clients/nvim -> ../../.venv).
  cmd = nil,
  --- codenook settings (docs/settings.md): nested tables or dotted keys.
  settings = {},
  --- Filetypes the server starts for. nil: the languages the server supports, asked from it
  --- (`codenook languages --json` with `cmd`); a list overrides that.
  filetypes = nil,
  root_markers = { '.git' },
  --- Insert-mode keys; each falls back to its usual meaning when no suggestion is shown.
  --- Set one to false to leave that key alone. `next` / `prev` cycle through the server's
  --- alternatives (completion.alternatives), as Alt+] / Alt+[ do in VS Code.
  keymaps = {
    accept = '<Tab>',
    accept_line = '<C-l>',
    accept_word = '<C-Right>',
    next = '<M-]>',
    prev = '<M-[>',
  },
  --- Pause after the last keystroke before asking (extmark ghost text, Neovim 0.11).
  debounce_ms = 150,
  --- nil: Neovim's own vim.lsp.inline_completion when it exists (0.12), else extmarks;
  --- false: always the extmark ghost text of this plugin.
  native = nil,
  --- Which workspace roots are trusted (a folder may be hostile). Untrusted roots get no
  --- workspace indexing (`index.enabled = false`) and no agent tasks. nil: Neovim's trust
  --- database decides (`:trust` on the root directory, or `:Codenook trust`); true or false:
  --- every root or none; a list of directories: roots at or below them; a function(root):
  --- boolean. See :help codenook-trust.
  trusted = nil,
  --- Agent tasks (:Codenook agent). `window`: where the transcript opens, the config of
  --- nvim_open_win() (a split below, full width, by default; a float works too), or false:
  --- nowhere (:Codenook transcript shows it). `focus`: go to that window when it opens.
  --- `echo`: show each step of the running task in the command line.
  agent = {
    window = { split = 'below', win = -1, height = 12 },
    focus = false,
    echo = true,
  },
}

M.config = vim.deepcopy(M.defaults)

---@type table<integer, table> last codenook/status per client id
local statuses = {}
local did_setup = false

--- Lua's empty table is a JSON array to vim.json; codenook expects objects.
local function json_safe(value)
  if type(value) ~= 'table' then
    return value
  end
  if next(value) == nil then
    return vim.empty_dict()
  end
  local out = {}
  for k, v in pairs(value) do
    out[k] = json_safe(v)
  end
  return out
end
M._json_safe = json_safe

local function plugin_root()
  local source = debug.getinfo(1, 'S').source:sub(2) -- <root>/lua/codenook/init.lua
  -- Through a packpath symlink to the checkout: the checkout's own path.
  source = vim.uv.fs_realpath(source) or source
  return vim.fn.fnamemodify(source, ':p:h:h:h')
end

--- `codenook serve` from PATH, else from the checkout's .venv.
function M.default_cmd()
  if vim.fn.executable('codenook') == 1 then
    return { 'codenook', 'serve' }
  end
  local venv = vim.fs.normalize(plugin_root() .. '/../../.venv/bin/codenook')
  venv = vim.fn.fnamemodify(venv, ':p')
  if vim.fn.executable(venv) == 1 then
    return { venv, 'serve' }
  end
  return { 'codenook', 'serve' }
end

local function native()
  return M.config.native ~= false and vim.lsp.inline_completion ~= nil
end

--- The codenook client of `buf` (default: current), else any running codenook client.
---@return vim.lsp.Client?
function M.client(buf)
  local clients = vim.lsp.get_clients({ name = NAME, bufnr = buf or api.nvim_get_current_buf() })
  if #clients == 0 then
    clients = vim.lsp.get_clients({ name = NAME })
  end
  return clients[1]
end

-- Status --------------------------------------------------------------------------------------

local LOAD_TOKEN = 'codenook-model-load'

--- Model loading shown through Neovim's own progress machinery (LspProgress, vim.lsp.status()).
--- The server sends no $/progress; its first codenook/status arrives when loading has ended.
local function load_progress(client_id, kind)
  vim.lsp.handlers['$/progress'](nil, {
    token = LOAD_TOKEN,
    value = kind == 'begin' and { kind = 'begin', title = 'codenook', message = 'loading model' }
      or { kind = 'end', message = 'model ready' },
  }, { client_id = client_id, method = '$/progress' })
end

local loading = {} ---@type table<integer, boolean> clients whose load progress is open

local function status_changed(client_id, status)
  statuses[client_id] = status
  if status.state == 'loading' and not loading[client_id] then
    loading[client_id] = true
    load_progress(client_id, 'begin')
  elseif status.state ~= 'loading' and loading[client_id] then
    loading[client_id] = nil
    load_progress(client_id, 'end')
  end
  api.nvim_exec_autocmds('User', { pattern = 'CodenookStatus', modeline = false, data = status })
  vim.cmd('redrawstatus')
end

local function on_status(_, result, ctx)
  if type(result) == 'table' then
    status_changed(ctx.client_id, result)
  end
end

--- Ask codenook/stats once at start (and after a model change): the server notifies
--- codenook/status when a load ends, not always when it begins.
local function first_status(client)
  if statuses[client.id] then
    return
  end
  client:request(STATS, vim.empty_dict(), function(err, result)
    -- "stopped" here only means that the engine has not been started yet.
    if err or type(result) ~= 'table' or statuses[client.id] or result.state == 'stopped' then
      return
    end
    status_changed(client.id, result)
  end)
end

--- A short engine state for statuslines, e.g. "codenook: idle 95 tok/s"; "" when no codenook
--- server serves the current buffer.
---@return string
function M.status()
  local client = vim.lsp.get_clients({ name = NAME, bufnr = api.nvim_get_current_buf() })[1]
  if not client then
    return ''
  end
  local s = statuses[client.id]
  if not s then
    return 'codenook: starting'
  end
  local state = s.state or '?'
  if state == 'idle' then
    local tps = tonumber(s.tokensPerSecond) or 0
    return tps > 0 and ('codenook: idle %d tok/s'):format(math.floor(tps + 0.5)) or 'codenook: idle'
  elseif state == 'generating' then
    local queue = tonumber(s.queueLength) or 0
    return queue > 0 and ('codenook: generating +%d'):format(queue) or 'codenook: generating'
  elseif state == 'loading' then
    return 'codenook: loading model'
  end
  return 'codenook: ' .. state
end

--- The last codenook/status of the client of `buf` (a table), or nil.
function M.last_status(buf)
  local client = M.client(buf)
  return client and statuses[client.id]
end

-- Problems ------------------------------------------------------------------------------------

-- The client announces `experimental.codenook.problems`; the server then reports what the user
-- must fix with `codenook/problem` { type (LSP MessageType), message, code, setting } instead
-- of window/showMessage. The level comes from `type` and the setting from `setting`: nothing
-- here reads the wording of the message.
local PROBLEM_LEVELS = {
  vim.log.levels.ERROR,
  vim.log.levels.WARN,
  vim.log.levels.INFO,
  vim.log.levels.INFO, -- Log
}

---@type table<integer, table> the last codenook/problem per client id (:checkhealth codenook)
local last_problems = {}

--- The text shown for a problem: its message, and the setting that fixes it when there is one.
function M.format_problem(problem)
  local msg = tostring(problem.message) -- "codenook: ..."
  local setting = problem.setting
  if type(setting) == 'string' and setting ~= '' then
    msg = msg
      .. ('\nsetting: %s (setup({ settings = ... }) or require("codenook").set(); :help codenook-settings)'):format(
        setting
      )
  end
  return msg
end

local function on_problem(_, params, ctx)
  if type(params) ~= 'table' or type(params.message) ~= 'string' then
    return
  end
  local problem = {
    type = params.type,
    message = params.message,
    code = type(params.code) == 'string' and params.code or '',
    setting = type(params.setting) == 'string' and params.setting or nil,
    client_id = ctx.client_id,
  }
  last_problems[ctx.client_id] = problem
  vim.notify(M.format_problem(problem), PROBLEM_LEVELS[params.type] or vim.log.levels.ERROR)
  api.nvim_exec_autocmds('User', { pattern = 'CodenookProblem', modeline = false, data = problem })
end
M._on_problem = on_problem

--- The last codenook/problem of the client of `buf` (a table with type, message, code,
--- setting), or nil.
function M.last_problem(buf)
  local client = M.client(buf)
  return client and last_problems[client.id]
end

-- Trust ----------------------------------------------------------------------------------------

-- A folder opened in the editor may be hostile: the server must not walk and parse it in the
-- background, and agent tasks (which change files) must not run in it, unless the user trusts
-- it. What is open in buffers is still completed, explained and refactored. The equivalent of
-- VS Code's Restricted Mode, decided per workspace root (one codenook client per root).

---@type table<string, boolean> roots trusted this session with :Codenook trust
local session_trusted = {}
---@type table<string, boolean> untrusted roots already announced
local told_untrusted = {}

--- A root's real path. Taken as it is: a folder's name may hold `$`, `%` or `#`, which
--- expand() or environment expansion would read as something else.
local function real(path)
  path = vim.fs.normalize(path, { expand_env = false })
  return vim.uv.fs_realpath(path) or path
end

local function trust_file()
  return vim.fn.stdpath('state') .. '/trust'
end

--- Whether Neovim's trust database ($XDG_STATE_HOME/nvim/trust, written by :trust and
--- vim.secure.trust()) allows the directory `root`. Read without asking: vim.secure.read()
--- would prompt the user for a root it does not know, while a buffer is being opened.
function M.in_trust_database(root)
  local f = io.open(trust_file(), 'r')
  if not f then
    return false
  end
  local contents = f:read('*a') or ''
  f:close()
  local path, verdict = real(root), nil
  for line in vim.gsplit(contents, '\n', { plain = true }) do
    local hash, file = line:match('^(%S+) (.+)$')
    if file == path then
      verdict = hash
    end
  end
  return verdict == 'directory'
end

--- Whether the workspace `root` is trusted (the `trusted` option, see :help codenook-trust).
--- No root (a file outside any project): nothing to index, and no agent tasks.
---@param root string?
---@return boolean
function M.trusted(root)
  if type(root) ~= 'string' or root == '' then
    return false
  end
  root = real(root)
  if session_trusted[root] then
    return true
  end
  local opt = M.config.trusted
  if opt == nil then
    return M.in_trust_database(root)
  elseif type(opt) == 'boolean' then
    return opt
  elseif type(opt) == 'function' then
    local ok, verdict = pcall(opt, root)
    if not ok then
      vim.notify(
        ('codenook: the trusted() function failed for %s: %s'):format(root, verdict),
        vim.log.levels.WARN
      )
    end
    return ok and verdict == true
  elseif type(opt) == 'table' then
    for _, dir in ipairs(opt) do
      local d = real(vim.fs.normalize(dir)):gsub('/+$', '') -- ~ and $VARS of the user's list
      if root == d or vim.startswith(root, d .. '/') then
        return true
      end
    end
  end
  return false
end

--- The value of `index.enabled` in `settings` (nested or dotted), or nil.
local function index_setting(settings)
  if settings['index.enabled'] ~= nil then
    return settings['index.enabled']
  end
  if type(settings.index) == 'table' then
    return settings.index.enabled
  end
  return nil
end

--- `settings` with `index.enabled` set to `value` (nested; a dotted key is removed).
local function with_index(settings, value)
  local out = vim.deepcopy(settings)
  out['index.enabled'] = nil
  out.index = type(out.index) == 'table' and out.index or {}
  out.index.enabled = value
  return out
end

--- `settings` as an untrusted root's server gets them: workspace indexing off.
function M.restricted(settings)
  return with_index(settings, false)
end

--- The settings the server of `root` gets (json_safe): M.config.settings, restricted when the
--- root is not trusted.
local function settings_for(root)
  local settings = M.config.settings
  if not M.trusted(root) then
    settings = M.restricted(settings)
  end
  return json_safe(settings)
end

local function tell_untrusted(root)
  if type(root) ~= 'string' or told_untrusted[root] then
    return
  end
  told_untrusted[root] = true
  vim.schedule(function()
    vim.notify(
      ('codenook: %s is not trusted: no workspace indexing (cross-file context), no agent tasks. '
        .. '`:Codenook trust` trusts it (:help codenook-trust).'):format(root),
      vim.log.levels.INFO
    )
  end)
end

--- before_init: what an untrusted root's server gets, before initialize is sent. `config` is
--- the client's own copy (vim.lsp.enable copies it per client), and client.settings is its
--- `settings` table, which the server's workspace/configuration request reads.
local function before_init(params, config)
  local root = config.root_dir
  if not root and type(config.workspace_folders) == 'table' and config.workspace_folders[1] then
    root = vim.uri_to_fname(config.workspace_folders[1].uri)
  end
  if M.trusted(root) then
    return
  end
  local restricted = json_safe(M.restricted(M.config.settings))
  params.initializationOptions = restricted
  if type(config.settings) == 'table' then
    config.settings.codenook = restricted
  end
  tell_untrusted(root)
end

--- On attach: should the server of an untrusted root have got the real settings (a before_init
--- of the user's own replaced ours through vim.lsp.config), turn indexing off now.
local function enforce_trust(client)
  local sent = vim.tbl_get(client.settings or {}, 'codenook', 'index', 'enabled')
  if sent == false or M.trusted(client.root_dir) then
    return
  end
  client.settings = { codenook = json_safe(M.restricted(M.config.settings)) }
  client:notify('workspace/didChangeConfiguration', {
    settings = { codenook = { index = { enabled = false } } },
  })
  tell_untrusted(client.root_dir)
end

--- The workspace root of the current buffer: its codenook client's, else found by root_markers.
local function current_root()
  local client = vim.lsp.get_clients({ name = NAME, bufnr = api.nvim_get_current_buf() })[1]
  if client then
    return client.root_dir
  end
  return vim.fs.root(0, M.config.root_markers or M.defaults.root_markers)
end
M._current_root = current_root

--- Trust the workspace `root` (default: the current buffer's): from now on its server indexes
--- the workspace and may run agent tasks. With the default `trusted = nil` the root is added to
--- Neovim's trust database (as `:trust` does for a directory), so this lasts; otherwise it
--- lasts for this session. Running servers of that root get the real settings at once.
---@param root string?
---@return boolean ok, string root or why not
function M.trust(root)
  if root then
    root = vim.fs.normalize(root) -- typed by the user: ~ and $VARS expand
  else
    root = current_root()
  end
  if type(root) ~= 'string' or root == '' then
    return false, 'this buffer has no workspace root (none of root_markers found above it)'
  end
  root = real(root)
  if vim.fn.isdirectory(root) == 0 then
    return false, ('%s is not a directory'):format(root)
  end
  session_trusted[root] = true
  told_untrusted[root] = nil
  if M.config.trusted == nil and not M.in_trust_database(root) then
    -- vim.secure.trust() allows by buffer only: a buffer named after the directory (not
    -- loaded, never shown) gives it the directory, which it records by name.
    local existed = vim.fn.bufexists(root) == 1
    local buf = vim.fn.bufadd(root)
    local ok, done, msg = pcall(vim.secure.trust, { action = 'allow', bufnr = buf })
    if not existed and api.nvim_buf_is_valid(buf) then
      pcall(api.nvim_buf_delete, buf, { force = true })
    end
    if not (ok and done) then
      vim.notify(
        ('codenook: trusted %s for this session only; Neovim\'s trust database refused it: %s'):format(
          root,
          tostring(ok and msg or done)
        ),
        vim.log.levels.WARN
      )
    end
  end
  local enabled = index_setting(M.config.settings)
  if enabled == nil then
    enabled = true
  end
  for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do
    if client.root_dir and real(client.root_dir) == root then
      client.settings = { codenook = json_safe(M.config.settings) }
      client:notify('workspace/didChangeConfiguration', {
        settings = { codenook = json_safe(with_index(M.config.settings, enabled)) },
      })
    end
  end
  api.nvim_exec_autocmds('User', {
    pattern = 'CodenookTrust',
    modeline = false,
    data = { root = root },
  })
  return true, root
end

-- Languages -----------------------------------------------------------------------------------

-- Which filetypes the server starts for is the server's to say. Neovim needs them before the
-- server runs (vim.lsp.enable attaches by filetype), so setup() asks `codenook languages
-- --json` once, in the background: the cmd with `languages --json` in place of `serve` and its
-- flags. That is cheap (no model, well under a second, startup does not wait) and, unlike
-- starting on every filetype and narrowing afterwards, never loads the model for a buffer the
-- server does not serve (a git commit message, a help file). The initialize result advertises
-- the same list (capabilities.experimental.codenook.languages); the plugin follows it if it
-- differs (see follow_advertised). A `filetypes` option overrides both.

---@type table[]? the languages the server advertised: { name, languageIds, extensions }
M.languages = nil
--- "pending", "option", "server" or "failed: <why>"
M.languages_source = nil

--- `cmd` with `languages --json` in place of `serve` and what follows it, or nil when `cmd`
--- has no `serve` word (a function, a wrapper script).
function M.languages_cmd(cmd)
  if type(cmd) ~= 'table' then
    return nil
  end
  for i, word in ipairs(cmd) do
    if word == 'serve' and i > 1 then
      local out = vim.list_slice(cmd, 1, i - 1)
      vim.list_extend(out, { 'languages', '--json' })
      return out
    end
  end
  return nil
end

--- The languages of `codenook languages --json` or of the initialize result, checked; nil if
--- `list` is not such a list.
local function parse_languages(list)
  if type(list) ~= 'table' or not vim.islist(list) then
    return nil
  end
  local out = {}
  for _, lang in ipairs(list) do
    if type(lang) == 'table' and type(lang.name) == 'string' and type(lang.languageIds) == 'table' then
      out[#out + 1] = lang
    end
  end
  return out
end
M._parse_languages = parse_languages

--- Every language id of the server's languages: Neovim's filetypes among them (cpp, lua, ...).
function M.filetypes_of(languages)
  local seen, out = {}, {}
  for _, lang in ipairs(languages) do
    for _, id in ipairs(lang.languageIds) do
      if type(id) == 'string' and not seen[id] then
        seen[id] = true
        out[#out + 1] = id
      end
    end
  end
  return out
end

local generation = 0 -- a newer setup() makes older answers stale

--- Start (or re-filter) the server for `filetypes`: buffers already open are attached or
--- detached by vim.lsp.enable (after VimEnter; before it, on VimEnter).
local function use_filetypes(filetypes)
  M.config.filetypes = filetypes
  vim.lsp.config(NAME, { filetypes = filetypes })
  vim.lsp.enable(NAME)
  if vim.v.vim_did_enter == 0 then
    api.nvim_create_autocmd('VimEnter', {
      once = true,
      callback = function()
        vim.lsp.enable(NAME)
      end,
    })
  end
  api.nvim_exec_autocmds('User', {
    pattern = 'CodenookLanguages',
    modeline = false,
    data = { filetypes = filetypes, source = M.languages_source },
  })
end

local function languages_failed(why)
  M.languages_source = 'failed: ' .. why
  vim.notify(
    ('codenook: could not ask the server which languages it supports (%s); it does not start. '
      .. 'Fix cmd, or pass filetypes = { ... } to require("codenook").setup() (see :help codenook-setup).'):format(
      why
    ),
    vim.log.levels.WARN
  )
end

--- Ask the server for its languages in the background, then enable it for them.
local function ask_languages(cmd)
  local argv = M.languages_cmd(cmd)
  if not argv then
    return languages_failed('cmd has no "serve" word to replace with "languages --json"')
  end
  if vim.fn.executable(argv[1]) == 0 then
    -- setup() has already said so.
    M.languages_source = ('failed: %q is not executable'):format(argv[1])
    return
  end
  M.languages_source = 'pending'
  local mine = generation
  local ok, err = pcall(vim.system, argv, { text = true, timeout = 20000 }, function(out)
    vim.schedule(function()
      if mine ~= generation then
        return
      end
      local decoded_ok, decoded = pcall(vim.json.decode, out.stdout or '')
      local languages = out.code == 0 and decoded_ok and parse_languages(decoded) or nil
      if not languages or #languages == 0 then
        local last = vim.trim(out.stderr or ''):gsub('.*\n', '')
        local what = out.code == 0 and 'printed no language list'
          or ('exited with %s%s'):format(tostring(out.code), last ~= '' and (': ' .. last) or '')
        return languages_failed(('`%s` %s'):format(table.concat(argv, ' '), what))
      end
      M.languages = languages
      M.languages_source = 'server'
      use_filetypes(M.filetypes_of(languages))
    end)
  end)
  if not ok then
    languages_failed(tostring(err))
  end
end

--- On attach: the initialize result is the truth. Should it advertise other languages than
--- the ones asked before start (the server was updated meanwhile), follow it.
local function follow_advertised(client)
  local experimental = (client.server_capabilities or {}).experimental
  local codenook = type(experimental) == 'table' and experimental.codenook or nil
  local languages = type(codenook) == 'table' and parse_languages(codenook.languages) or nil
  if not languages or #languages == 0 or M.languages_source == 'option' then
    return
  end
  local filetypes = M.filetypes_of(languages)
  M.languages = languages
  if vim.deep_equal(filetypes, M.config.filetypes) then
    return
  end
  M.languages_source = 'server'
  vim.schedule(function()
    if client:is_stopped() then
      return
    end
    use_filetypes(filetypes)
  end)
end

-- Code actions -------------------------------------------------------------------------------

local RUN_ACTION = 'codenook.runAction'
local CONTENT_MODIFIED = -32801

--- Client side of the server's `codenook.runAction` command (what a picked code action runs):
--- asks for the instruction of "Edit with instruction…", then runs it on the server, which
--- streams the edit into the buffer with workspace/applyEdit under a $/progress.
local function run_action(command, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if not client then
    return
  end
  local args = vim.deepcopy(command.arguments or {})
  local spec = type(args[1]) == 'table' and args[1] or {}
  local function send()
    local params = { command = RUN_ACTION, arguments = args }
    client:request('workspace/executeCommand', params, function(err, result)
      local status = type(result) == 'table' and result.status
      if err then
        local msg = tostring(err.message or err)
        if not msg:find('^codenook') then
          msg = 'codenook: ' .. msg
        end
        local level = err.code == CONTENT_MODIFIED and vim.log.levels.WARN or vim.log.levels.ERROR
        vim.notify(msg, level)
      elseif status == 'applied' or status == 'cancelled' then
        -- "rejected" and "stopped" are explained by the server itself (codenook/problem).
        vim.notify(('codenook: %s'):format(result.status), vim.log.levels.INFO)
      end
      api.nvim_exec_autocmds('User', {
        pattern = 'CodenookAction',
        modeline = false,
        data = { action = spec.action, err = err, result = result },
      })
    end, ctx.bufnr)
  end
  if spec.action == 'instruct' and not spec.instruction then
    vim.ui.input({ prompt = 'codenook: what should change? ' }, function(text)
      if text and text ~= '' then
        spec.instruction = text
        send()
      end
    end)
  else
    send()
  end
end

--- The files a WorkspaceEdit creates (CreateFile) and then fills with one insert at their start:
--- uri -> the inserted text.
local function created_contents(changes)
  local created, texts = {}, {}
  for _, change in ipairs(changes) do
    local doc = change.textDocument
    if change.kind == 'create' and type(change.uri) == 'string' then
      created[change.uri] = true
    elseif doc and created[doc.uri] then
      local edit = #(change.edits or {}) == 1 and change.edits[1] or nil
      local range = edit and edit.range
      if
        range
        and range.start.line == 0
        and range.start.character == 0
        and range['end'].line == 0
        and range['end'].character == 0
        and texts[doc.uri] == nil
      then
        texts[doc.uri] = edit.newText
      else
        texts[doc.uri] = false
      end
    end
  end
  return texts
end

--- Neovim loads a file that a CreateFile has just made (empty) as one empty line with 'eol'
--- (the text "\n"), so inserting "a\nb\n" into it leaves "a\nb\n\n": an empty line too many.
--- Drop it, so the buffer holds exactly what the server created.
local function fix_created(texts)
  for uri, text in pairs(texts) do
    local buf = vim.uri_to_bufnr(uri)
    if text and text:sub(-1) == '\n' and api.nvim_buf_is_loaded(buf) and vim.bo[buf].eol then
      local want = vim.split(text:sub(1, -2), '\n', { plain = true })
      local lines = api.nvim_buf_get_lines(buf, 0, -1, false)
      if #lines == #want + 1 and lines[#lines] == '' then
        api.nvim_buf_set_lines(buf, -2, -1, false, {})
      end
    end
  end
end

--- Neovim 0.11 answers `applied = true` to an edit for an older document version that it
--- skipped (it only prints "Buffer ... newer than edits"), and prints every edit's label.
--- The server streams many small versioned edits: refuse stale ones, keep quiet.
local function apply_edit(err, params, ctx)
  local created = {}
  if type(params) == 'table' and type(params.edit) == 'table' then
    local changes = params.edit.documentChanges or {}
    for _, change in ipairs(changes) do
      local doc = change.textDocument
      if doc and doc.uri and type(doc.version) == 'number' and doc.version > 0 then
        local version = vim.lsp.util.buf_versions[vim.uri_to_bufnr(doc.uri)]
        if version and version > doc.version then
          return { applied = false, failureReason = 'the document changed' }
        end
      end
    end
    created = created_contents(changes)
    local quiet = {}
    for k, v in pairs(params) do
      quiet[k] = v
    end
    quiet.label = nil
    params = quiet
  end
  local result = vim.lsp.handlers['workspace/applyEdit'](err, params, ctx)
  if type(result) == 'table' and result.applied then
    fix_created(created)
  end
  return result
end

--- Stop the code actions and agent tasks running on the server (their progress is cancelled;
--- a code action puts the original text back). Returns how many.
function M.cancel()
  local agent = require('codenook.agent')
  local n = agent.cancel()
  for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do
    for token in pairs(client.progress.pending or {}) do
      if token ~= LOAD_TOKEN and not agent.owns(client.id, token) then
        client:notify('window/workDoneProgress/cancel', { token = token })
        n = n + 1
      end
    end
  end
  return n
end

-- Accepting ------------------------------------------------------------------------------------

local function insert_at_cursor(text)
  local buf, win = api.nvim_get_current_buf(), api.nvim_get_current_win()
  local pos = api.nvim_win_get_cursor(win)
  local row, col = pos[1] - 1, pos[2]
  local lines = vim.split(text, '\n', { plain = true })
  vim.cmd('let &g:undolevels = &g:undolevels')
  api.nvim_buf_set_text(buf, row, col, row, col, lines)
  api.nvim_win_set_cursor(win, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
end

--- Neovim 0.12: accept part of the item that vim.lsp.inline_completion shows.
local function native_partial(item, kind)
  local text = item.insert_text
  text = type(text) == 'table' and text.value or text
  if type(text) ~= 'string' then
    return nil
  end
  local start = item.range and item.range.start
  if start and start.row ~= nil then
    local pos = api.nvim_win_get_cursor(0)
    if start.row == pos[1] - 1 and start.col <= pos[2] then
      local typed = api.nvim_get_current_line():sub(start.col + 1, pos[2])
      if text:sub(1, #typed) == typed then
        text = text:sub(#typed + 1)
      end
    end
  end
  local piece = require('codenook.ghost').piece(text, kind)
  if piece ~= '' then
    insert_at_cursor(piece)
  end
  return nil -- we inserted the text ourselves
end

local function accept(kind)
  if native() then
    if kind == 'all' then
      return vim.lsp.inline_completion.get() == true
    end
    return vim.lsp.inline_completion.get({
      on_accept = function(item)
        return native_partial(item, kind)
      end,
    }) == true
  end
  return require('codenook.ghost').accept(api.nvim_get_current_buf(), kind)
end

--- Insert the whole suggestion. Returns false when none is shown.
function M.accept()
  return accept('all')
end

--- Insert the suggestion up to the end of its current line.
function M.accept_line()
  return accept('line')
end

--- Insert the next word of the suggestion.
function M.accept_word()
  return accept('word')
end

--- Show another suggestion for the cursor: the next one of the list (`delta` 1) or the
--- previous one (-1). The first use at a place asks the server for the list (up to
--- completion.alternatives items); the suggestion on screen stays its first.
---@return boolean handled
local function cycle(delta)
  if native() then
    return pcall(vim.lsp.inline_completion.select, { count = delta })
  end
  return require('codenook.ghost').cycle(api.nvim_get_current_buf(), delta)
end

--- Show the next suggestion of the list (the list is asked for on first use).
function M.next()
  return cycle(1)
end

--- Show the previous suggestion of the list.
function M.prev()
  return cycle(-1)
end

--- Ask for a suggestion now instead of waiting for the next keystroke.
function M.trigger()
  if native() then
    return
  end
  require('codenook.ghost').trigger(api.nvim_get_current_buf())
end

--- Hide the suggestion shown in the current buffer.
function M.dismiss()
  if not native() then
    require('codenook.ghost').clear(api.nvim_get_current_buf())
  end
end

--- Whether a suggestion is shown (extmark ghost text only; nil with Neovim's native one).
function M.visible()
  if native() then
    return nil
  end
  return require('codenook.ghost').visible(api.nvim_get_current_buf())
end

-- Keymaps ----------------------------------------------------------------------------------------

--- What the key did before we mapped it: an existing mapping (global or buffer-local, found
--- when the server attached) or, without one, the key's built-in meaning.
local function fallback(lhs)
  local prev = vim.fn.maparg(lhs, 'i', false, true)
  if type(prev) ~= 'table' or next(prev) == nil or (prev.desc or ''):find('^codenook') then
    return function()
      api.nvim_feedkeys(vim.keycode(lhs), 'ni', false)
    end
  end
  return function()
    local keys
    if prev.callback then
      keys = prev.callback()
      if prev.expr ~= 1 then
        return
      end
    else
      keys = prev.expr == 1 and vim.fn.eval(prev.rhs) or prev.rhs
    end
    if type(keys) == 'string' and keys ~= '' then
      api.nvim_feedkeys(vim.keycode(keys), prev.noremap == 1 and 'ni' or 'mi', false)
    end
  end
end

local function map_keys(buf)
  if vim.b[buf].codenook_keymaps then
    return
  end
  vim.b[buf].codenook_keymaps = true
  local actions = {
    accept = M.accept,
    accept_line = M.accept_line,
    accept_word = M.accept_word,
    next = M.next,
    prev = M.prev,
  }
  for name, fn in pairs(actions) do
    local lhs = M.config.keymaps[name]
    if lhs then
      local otherwise = fallback(lhs)
      vim.keymap.set('i', lhs, function()
        if not fn() then
          otherwise()
        end
      end, { buffer = buf, desc = 'codenook: ' .. name:gsub('_', ' ') })
    end
  end
end

-- Attaching -------------------------------------------------------------------------------------

local function attach(buf, client)
  if native() then
    local filter = { bufnr = buf, client_id = client.id }
    if not pcall(vim.lsp.inline_completion.enable, true, filter) then
      vim.lsp.inline_completion.enable(true, { bufnr = buf })
    end
  else
    require('codenook.ghost').attach(buf, client.id, { debounce_ms = M.config.debounce_ms })
  end
  map_keys(buf)
  enforce_trust(client)
  first_status(client)
  follow_advertised(client)
end

--- Change settings while running: sent with workspace/didChangeConfiguration, and kept for
--- the server's workspace/configuration requests. Only the given keys change.
---@param settings table nested tables or dotted keys, as in setup{settings=...}
function M.set(settings)
  M.config.settings = vim.tbl_deep_extend('force', M.config.settings, settings)
  local reload = settings.model ~= nil
  for key in pairs(settings) do
    reload = reload or (type(key) == 'string' and vim.startswith(key, 'model.'))
  end
  for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do
    -- An untrusted root's server never gets workspace indexing, whatever is set.
    local trusted = M.trusted(client.root_dir)
    client.settings = { codenook = settings_for(client.root_dir) }
    client:notify('workspace/didChangeConfiguration', {
      settings = { codenook = json_safe(trusted and settings or M.restricted(settings)) },
    })
    if reload then
      -- The server reloads the model without a status notification until it is done.
      statuses[client.id] = nil
      first_status(client)
    end
  end
end

---@param opts? table see M.defaults and :help codenook-setup
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('codenook: needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  opts = opts or {}
  local config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- Lists are replaced, not merged index by index.
  config.filetypes = opts.filetypes
  config.root_markers = opts.root_markers or M.defaults.root_markers
  config.cmd = opts.cmd or M.default_cmd()
  config.settings = vim.deepcopy(opts.settings or {})
  config.trusted = opts.trusted
  -- A window config is replaced, not merged (a float needs none of the split's keys).
  if type(opts.agent) == 'table' and opts.agent.window ~= nil then
    config.agent.window = opts.agent.window
  end
  M.config = config

  local exe = type(config.cmd) == 'table' and config.cmd[1]
  if exe and vim.fn.executable(exe) == 0 then
    vim.notify(
      ('codenook: cannot start the server: %q is not executable. Install codenook (`make install` '
        .. 'in its checkout) or pass cmd = { "/path/to/codenook/.venv/bin/codenook", "serve" } '
        .. 'to require("codenook").setup().'):format(exe),
      vim.log.levels.WARN
    )
  end

  generation = generation + 1
  M.languages = nil
  M.languages_source = config.filetypes and 'option' or nil

  vim.lsp.config(NAME, {
    cmd = config.cmd,
    root_markers = config.root_markers,
    init_options = json_safe(config.settings),
    -- Pushed with workspace/didChangeConfiguration after initialize, and the answer to the
    -- server's workspace/configuration request for the section "codenook".
    settings = { codenook = json_safe(config.settings) },
    handlers = {
      [STATUS] = on_status,
      [PROBLEM] = on_problem,
      ['workspace/applyEdit'] = apply_edit,
      ['codenook/agentTranscript'] = function(...)
        return require('codenook.agent').on_transcript(...)
      end,
    },
    -- Merged into Neovim's own capabilities: ask for codenook/problem instead of showMessage.
    capabilities = { experimental = { codenook = { problems = true } } },
    commands = { [RUN_ACTION] = run_action },
    -- Send each change at once: after every streamed edit the server waits for our didChange.
    flags = { debounce_text_changes = 0 },
    -- An untrusted workspace root: no workspace indexing (see M.trusted).
    before_init = before_init,
  })
  if config.filetypes then
    use_filetypes(config.filetypes)
  else
    ask_languages(config.cmd)
  end

  if did_setup then
    return
  end
  did_setup = true
  local group = api.nvim_create_augroup('codenook', { clear = true })
  api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == NAME then
        attach(args.buf, client)
      end
    end,
  })
  -- An agent task's work-done progress: its token (for :Codenook cancel) and step messages.
  api.nvim_create_autocmd('LspProgress', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == NAME then
        require('codenook.agent').on_progress(args)
      end
    end,
  })
  api.nvim_create_autocmd('LspDetach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == NAME then
        require('codenook.ghost').detach(args.buf)
        if client:is_stopped() then
          statuses[client.id] = nil
          loading[client.id] = nil
          last_problems[client.id] = nil
          require('codenook.agent').detach(client.id)
        end
      end
    end,
  })
end

M._stats_method = STATS

return M
