-- End-to-end test of the codenook Neovim plugin against the real `codenook serve` with the
-- embedded SmolLM2 model. Run through clients/nvim/test/run.sh, or directly:
--
--   nvim --headless --clean -l clients/nvim/test/test_codenook.lua
--
-- This script drives a second Neovim (`nvim --embed --headless --clean`) over RPC and types
-- into it with nvim_input, so mappings, TextChangedI, CursorMovedI, InsertLeave and the
-- debounce timer run exactly as they do for a user. It ends with "N passed, M failed" and
-- exits non-zero on any failure; CODENOOK_TEST_KEEP=1 keeps the temporary folder (LSP log).

local script = vim.fs.normalize(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p'))
local plugin = vim.fs.dirname(vim.fs.dirname(script)) -- clients/nvim
local t_start = vim.uv.hrtime()

local passed, failed, notes = 0, 0, {}

local function elapsed()
  return ('%.1fs'):format((vim.uv.hrtime() - t_start) / 1e9)
end

local function say(msg)
  io.stdout:write(msg, '\n')
  io.stdout:flush()
end

local function check(name, ok, detail)
  if ok then
    passed = passed + 1
    say(('ok   %s  [%s]'):format(name, elapsed()))
  else
    failed = failed + 1
    say(('FAIL %s  [%s]%s'):format(name, elapsed(), detail and ('\n     ' .. detail) or ''))
  end
  return ok
end

local function note(msg)
  notes[#notes + 1] = msg
  say('note ' .. msg)
end

-- Files ---------------------------------------------------------------------------------------

local tmp = vim.fn.tempname()
vim.fn.mkdir(tmp, 'p')
local sample = tmp .. '/sample.py'
local SAMPLE = {
  'def add(a, b):',
  '    """Return the sum of a and b."""',
  '    return',
  '',
  '',
  'def mean(values):',
  '    """Return the mean of values."""',
  '    total = 0',
  '    for v in values',
}
vim.fn.writefile(SAMPLE, sample)

-- Help file: tags generate without duplicates ---------------------------------------------

do
  local doc = tmp .. '/doc'
  vim.fn.mkdir(doc, 'p')
  vim.fn.writefile(vim.fn.readfile(plugin .. '/doc/codenook.txt'), doc .. '/codenook.txt')
  local ok, err = pcall(vim.cmd.helptags, doc)
  local tags = ok and table.concat(vim.fn.readfile(doc .. '/tags'), '\n') or ''
  check(
    'doc/codenook.txt: helptags without errors, main tags present',
    ok and tags:find('codenook.setup()', 1, true) and tags:find(':Codenook', 1, true)
      and tags:find('codenook-keymaps', 1, true),
    tostring(err)
  )
end

-- The editor under test ----------------------------------------------------------------------

local env = {}
for _, d in ipairs({ 'CONFIG', 'DATA', 'STATE', 'CACHE' }) do
  env['XDG_' .. d .. '_HOME'] = tmp .. '/' .. d:lower()
end
local chan = vim.fn.jobstart(
  { vim.v.progpath, '--embed', '--headless', '--clean', '--cmd', 'set columns=120 lines=40' },
  { rpc = true, env = env }
)
assert(chan > 0, 'could not start nvim --embed')

local function x(code, ...)
  local r = vim.rpcrequest(chan, 'nvim_exec_lua', code, { ... })
  if r == vim.NIL then
    return nil
  end
  return r
end

local function input(keys)
  vim.rpcrequest(chan, 'nvim_input', keys)
end

--- Poll fn() until it returns a truthy value or `ms` pass; returns that value or nil.
local function wait_for(ms, fn)
  local val
  vim.wait(ms, function()
    val = fn()
    return val ~= nil and val ~= false
  end, 20)
  return (val ~= nil and val ~= false) and val or nil
end

-- Helpers inside the editor under test.
x(
  [[
  local plugin = ...
  vim.opt.rtp:prepend(plugin)
  vim.cmd.runtime('plugin/codenook.lua')
  _G.T = { notes = {}, requests = {}, progress = {} }
  vim.notify = function(msg, level)
    table.insert(T.notes, { msg = tostring(msg), level = level })
  end
  vim.api.nvim_create_autocmd('LspRequest', { callback = function(a)
    local r = a.data.request
    if r.method == 'textDocument/inlineCompletion' then
      table.insert(T.requests, { id = a.data.request_id, type = r.type })
    end
  end })
  vim.api.nvim_create_autocmd('LspProgress', { callback = function(a)
    local v = a.data.params.value
    table.insert(T.progress, { token = a.data.params.token, kind = v and v.kind })
  end })
  function T.ns() return vim.api.nvim_get_namespaces()['codenook.ghost'] end
  function T.ghost()
    local ns = T.ns()
    if not ns then return nil end
    local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
    local m = marks[1]
    if not m then return nil end
    local d = m[4]
    local lines = { d.virt_text and d.virt_text[1] and d.virt_text[1][1] or '' }
    for _, vl in ipairs(d.virt_lines or {}) do lines[#lines + 1] = vl[1][1] end
    return { row = m[2], col = m[3], pos = d.virt_text_pos, count = #marks,
             text = table.concat(lines, '\n'), first = lines[1], virt_lines = #lines - 1 }
  end
  function T.state()
    local c = vim.api.nvim_win_get_cursor(0)
    return { mode = vim.api.nvim_get_mode().mode, row = c[1] - 1, col = c[2],
             lines = vim.api.nvim_buf_get_lines(0, 0, -1, false) }
  end
  --- Screen text where buffer position (row, col) is drawn, `width` cells, after redraw!.
  function T.screen(row, col, width, below)
    vim.cmd('redraw!')
    local win = vim.api.nvim_get_current_win()
    local info = vim.fn.getwininfo(win)[1]
    local line = vim.api.nvim_buf_get_lines(0, row, row + 1, false)[1]
    local srow = vim.fn.screenpos(win, row + 1, 1).row + (below or 0)
    local scol = info.wincol + info.textoff + (below and 0 or vim.fn.strdisplaywidth(line:sub(1, col)))
    local s = {}
    for c = scol, math.min(scol + width - 1, info.wincol + info.width - 1) do
      s[#s + 1] = vim.fn.screenstring(srow, c)
    end
    return table.concat(s)
  end
  function T.client()
    return vim.lsp.get_clients({ name = 'codenook', bufnr = 0 })[1]
  end
  function T.stats()
    local c = T.client()
    if not c then return nil end
    local r = c:request_sync('codenook/stats', vim.empty_dict(), 2000)
    return r and r.result
  end
  function T.log_tail(n)
    local path = vim.lsp.get_log_path()
    local ok, lines = pcall(vim.fn.readfile, path)
    if not ok then return 'no LSP log at ' .. path end
    return table.concat(vim.list_slice(lines, math.max(1, #lines - n + 1)), '\n')
  end
]],
  plugin
)

local function diagnostics()
  say('--- diagnostics ---')
  local ok, info = pcall(x, [[
    local out = {}
    out[#out + 1] = 'mode/cursor/lines: ' .. vim.inspect(T.state())
    out[#out + 1] = 'ghost: ' .. vim.inspect(T.ghost())
    out[#out + 1] = 'notifications: ' .. vim.inspect(T.notes)
    out[#out + 1] = 'inlineCompletion requests: ' .. vim.inspect(T.requests)
    out[#out + 1] = 'stats: ' .. vim.inspect(T.stats())
    out[#out + 1] = 'messages: ' .. vim.fn.execute('messages')
    out[#out + 1] = 'LSP log (' .. vim.lsp.get_log_path() .. '), last lines:\n' .. T.log_tail(40)
    return table.concat(out, '\n')
  ]])
  say(ok and info or ('(the editor under test did not answer: ' .. tostring(info) .. ')'))
end

--- Stop the server and the editor under test, print the summary, exit.
local function finish()
  pcall(x, [[
    for _, c in ipairs(vim.lsp.get_clients()) do c:stop() end
    vim.wait(5000, function() return #vim.lsp.get_clients() == 0 end, 20)
  ]])
  if failed > 0 then
    diagnostics()
  end
  pcall(vim.rpcrequest, chan, 'nvim_command', 'qa!')
  vim.fn.jobwait({ chan }, 3000)
  vim.fn.jobstop(chan)
  if os.getenv('CODENOOK_TEST_KEEP') then
    say('kept ' .. tmp)
  else
    vim.fn.delete(tmp, 'rf')
  end
  say(('%d passed, %d failed'):format(passed, failed))
  os.exit(failed == 0 and 0 or 1)
end

-- setup(): JSON shapes ----------------------------------------------------------------------

do
  local enc = x([[
    require('codenook').setup({ settings = {} })
    local c = vim.lsp.config.codenook
    return { vim.json.encode(c.init_options), vim.json.encode(c.settings) }
  ]])
  check(
    'setup{settings = {}} sends JSON objects, not arrays',
    enc[1] == '{}' and enc[2] == '{"codenook":{}}',
    vim.inspect(enc)
  )
end

-- Installed through a packpath symlink, the server is found in the checkout's .venv.
do
  local link = tmp .. '/pack/codenook/start/codenook'
  vim.fn.mkdir(vim.fs.dirname(link), 'p')
  vim.uv.fs_symlink(plugin, link)
  local cmd = x([[
    local path = vim.env.PATH
    vim.env.PATH = '/usr/bin:/bin'
    local ok, mod = pcall(dofile, ... .. '/lua/codenook/init.lua')
    vim.env.PATH = path
    return ok and mod.default_cmd() or { tostring(mod) }
  ]], link)
  local want = vim.fs.normalize(vim.fn.fnamemodify(plugin .. '/../../.venv/bin/codenook', ':p'))
  check('through a symlink, the default command is the checkout\'s .venv/bin/codenook', cmd[1] == want, vim.inspect({ cmd = cmd, want = want }))
end

-- Languages: asked from the server (`codenook languages --json`), never a copied list.
local venv_codenook = vim.fs.normalize(vim.fn.fnamemodify(plugin .. '/../../.venv/bin/codenook', ':p'))
local server_languages = vim.json.decode(vim.fn.system({ venv_codenook, 'languages', '--json' }))
check(
  '`codenook languages --json` lists the server\'s languages, Java, C, C++ and Lua among them',
  vim.v.shell_error == 0 and #server_languages >= 10,
  vim.inspect(server_languages)
)

--- Wait until setup()'s question to the server is answered; returns the filetypes.
local function wait_languages()
  return wait_for(10000, function()
    return x([[
      local c = require('codenook')
      if c.languages_source == 'pending' then return nil end
      return { source = c.languages_source, filetypes = vim.lsp.config.codenook.filetypes or {} }
    ]])
  end)
end

do
  x([[require('codenook').setup({ filetypes = { 'lua' } })]])
  local got = wait_languages()
  check(
    'setup{filetypes = {...}} overrides the server\'s list',
    got and got.source == 'option' and vim.deep_equal(got.filetypes, { 'lua' }),
    vim.inspect(got)
  )
end

local cfg = x([[
  require('codenook').setup({
    native = false, -- the extmark ghost text, also when this runs on Neovim 0.12
    settings = {
      -- One thread: on a busy 2-core machine llama.cpp's thread barrier stalls for seconds.
      model = { threads = 1 },
      completion = { maxTokens = 16, timeBudgetMs = 30000 },
      actions = { maxTokens = 160 },
      hover = { timeBudgetMs = 0 },
    },
  })
  local c = vim.lsp.config.codenook
  return { cmd = c.cmd, init = vim.json.encode(c.init_options), exe = vim.fn.executable(c.cmd[1]) }
]])
check('setup() resolves an executable server command', cfg.exe == 1, vim.inspect(cfg.cmd))
do
  local got = wait_languages()
  local want = {}
  for _, lang in ipairs(server_languages) do
    vim.list_extend(want, lang.languageIds)
  end
  check(
    'without filetypes, setup() starts the server for every language id the server lists',
    got and got.source == 'server' and vim.deep_equal(got.filetypes, want),
    vim.inspect({ got = got, want = want })
  )
  check(
    'the filetypes include java, c, cpp and lua',
    got and vim.list_contains(got.filetypes, 'java') and vim.list_contains(got.filetypes, 'c')
      and vim.list_contains(got.filetypes, 'cpp') and vim.list_contains(got.filetypes, 'lua'),
    vim.inspect(got)
  )
end
say('     cmd: ' .. table.concat(cfg.cmd, ' '))
check(
  'settings become init_options',
  vim.json.decode(cfg.init).completion.maxTokens == 16,
  cfg.init
)

-- Attach and load ---------------------------------------------------------------------------

x('vim.cmd.edit(...)', sample)
local caps = wait_for(20000, function()
  return x([[
    local c = T.client()
    if not (c and c.initialized) then return nil end
    local sc = c.server_capabilities
    local exp = (sc.experimental or {}).codenook or {}
    return { inline = sc.inlineCompletionProvider ~= nil, encoding = c.offset_encoding,
             problems_asked = vim.tbl_get(c.capabilities, 'experimental', 'codenook', 'problems'),
             advertised = type(exp.languages) == 'table' and #exp.languages or 0,
             hover = sc.hoverProvider and true or false,
             code_action = sc.codeActionProvider and true or false,
             commands = (sc.executeCommandProvider or {}).commands or {},
             filetype = vim.bo.filetype }
  ]])
end)
if
  not check(
    'the server starts and attaches to a python buffer',
    caps ~= nil,
    'no initialized codenook client after 20 s'
  )
then
  finish()
end
check('the server advertises textDocument/inlineCompletion', caps.inline)
check(
  'the client asks for codenook/problem (capabilities.experimental.codenook.problems)',
  caps.problems_asked == true,
  vim.inspect(caps.problems_asked)
)
if caps.advertised > 0 then
  check('the initialize result advertises the same languages', caps.advertised == #server_languages, tostring(caps.advertised))
else
  note('the server does not advertise capabilities.experimental.codenook.languages (yet)')
end
say('     position encoding: ' .. tostring(caps.encoding))

local stats = wait_for(60000, function()
  local s = x('return T.stats()')
  if s and (s.state == 'idle' or s.state == 'failed') then
    return s
  end
end)
check(
  'the engine loads the model (codenook/stats says idle)',
  stats and stats.state == 'idle',
  vim.inspect(stats)
)
local status = wait_for(5000, function()
  local s = x([[return require('codenook').status()]])
  return s:match('^codenook: idle') and s
end)
check('status() reports idle for statuslines', status ~= nil, x([[return require('codenook').status()]]))

-- Ghost text ---------------------------------------------------------------------------------

local RETURN_ROW = 2 -- 0-based row of '    return'
local FOR_ROW = 8 -- 0-based row of '    for v in values'

--- Leave insert mode, reset the sample, put the cursor at the end of `row` in insert mode and
--- type `keys`; wait for ghost text. Returns the ghost (see T.ghost) or nil.
local function fresh_ghost(row, keys)
  input('<Esc>')
  wait_for(2000, function()
    return x('return vim.api.nvim_get_mode().mode') == 'n'
  end)
  x('vim.api.nvim_buf_set_lines(0, 0, -1, false, ...)', SAMPLE)
  x('vim.api.nvim_win_set_cursor(0, {...})', row + 1, 0)
  input('A' .. keys)
  return wait_for(30000, function()
    return x('return T.ghost()')
  end)
end

local before = SAMPLE[RETURN_ROW + 1] .. ' '
local g = fresh_ghost(RETURN_ROW, ' ')
if
  check(
    'typing shows ghost text (inline extmark at the cursor)',
    g and g.row == RETURN_ROW and g.col == #before and g.pos == 'inline' and g.text ~= '',
    vim.inspect(g)
  )
then
  say(('     suggestion: %q'):format(g.text))
  local width = vim.fn.strdisplaywidth(g.first)
  local screen = x('return T.screen(...)', g.row, g.col, width)
  check('the ghost text is drawn on screen after the typed text', screen == g.first, ('screen %q, ghost %q'):format(screen, g.first))
  check('visible() is true while a suggestion is shown', x([[return require('codenook').visible()]]) == true)

  -- Accept everything with the real key.
  input('<Tab>')
  local after = wait_for(10000, function()
    local s = x('return T.state()')
    return s.lines[RETURN_ROW + 1] ~= before and s
  end)
  local want = vim.split(before .. g.text, '\n', { plain = true })
  local got = after and vim.list_slice(after.lines, RETURN_ROW + 1, RETURN_ROW + #want)
  check('<Tab> inserts the suggestion', after and vim.deep_equal(got, want), vim.inspect({ got = got, want = want }))
  check(
    'the cursor ends after the inserted text, still in insert mode',
    after
      and after.mode == 'i'
      and after.row == RETURN_ROW + #want - 1
      and after.col == #want[#want],
    vim.inspect(after and { mode = after.mode, row = after.row, col = after.col })
  )
  check('no ghost text is left after accepting', wait_for(2000, function()
    return x('return T.ghost() == nil')
  end) == true)

  -- Accepting is its own undo step.
  input('<Esc>u')
  local undone = wait_for(5000, function()
    local s = x('return T.state()')
    return s.mode == 'n' and s.lines[RETURN_ROW + 1] == before and s
  end)
  check('u undoes the accepted text and keeps what was typed before', undone ~= nil, vim.inspect(x('return T.state().lines')))
end

-- Accept word, then line.
local g2 = fresh_ghost(RETURN_ROW, ' ')
if check('the same position gets a suggestion again', g2 ~= nil) then
  local word = g2.text:match('^%s*[%w_]+') or g2.text:match('^%s*[^%w_%s]+') or g2.text
  input('<C-Right>')
  local s = wait_for(5000, function()
    local st = x('return T.state()')
    return st.lines[RETURN_ROW + 1] ~= before and st
  end)
  local line = s and s.lines[RETURN_ROW + 1]
  check(
    '<C-Right> inserts the next word of the suggestion',
    line == before .. word:gsub('\n.*', ''),
    ('line %q, word %q'):format(tostring(line), word)
  )
  local rest = g2.text:sub(#word + 1)
  if rest ~= '' then
    local shown = wait_for(2000, function()
      return x('return T.ghost()')
    end)
    check(
      'the rest of the suggestion stays shown after accepting a word',
      shown and shown.text == rest,
      ('ghost %q, want %q'):format(shown and shown.text or 'nil', rest)
    )
    local piece = rest:match('^[^\n]*')
    input('<C-l>')
    local s2 = wait_for(5000, function()
      local st = x('return T.state()')
      return st.lines[RETURN_ROW + 1] ~= line and st
    end)
    check(
      '<C-l> inserts the rest of the line',
      s2 and s2.lines[RETURN_ROW + 1] == line .. piece,
      ('line %q, want %q'):format(s2 and s2.lines[RETURN_ROW + 1] or 'nil', line .. piece)
    )
  else
    note('the suggestion was a single word; accept-line after accept-word not exercised')
  end
end

-- Multi-line suggestion: virt_lines, and accept-line across lines.
local g3 = fresh_ghost(FOR_ROW, ':')
if g3 and g3.virt_lines > 0 then
  say(('     suggestion: %q'):format(g3.text))
  local first_virt = g3.text:match('^[^\n]*\n([^\n]*)')
  local screen = x('return T.screen(...)', g3.row, 0, vim.fn.strdisplaywidth(first_virt), 1)
  check(
    'a multi-line suggestion draws its next lines as virt_lines',
    screen == first_virt,
    ('screen %q, want %q'):format(screen, first_virt)
  )
  local for_line = SAMPLE[FOR_ROW + 1] .. ':'
  local piece = g3.text:match('^([^\n]*)')
  if piece == '' then
    piece = g3.text:match('^(\n[^\n]*)')
  end
  input('<C-l>')
  local s = wait_for(5000, function()
    local st = x('return T.state()')
    return #st.lines ~= #SAMPLE or st.lines[FOR_ROW + 1] ~= for_line and st
  end)
  s = s and x('return T.state()')
  local want = vim.split(for_line .. piece, '\n', { plain = true })
  local got = s and vim.list_slice(s.lines, FOR_ROW + 1, FOR_ROW + #want)
  check(
    '<C-l> on a multi-line suggestion inserts one line',
    got and vim.deep_equal(got, want) and #s.lines == FOR_ROW + #want,
    vim.inspect({ got = s and s.lines, want = want })
  )
elseif g3 then
  note(('the model gave a one-line suggestion after "for v in values:" (%q); virt_lines not exercised'):format(g3.text))
else
  check('a suggestion after "for v in values:"', false, 'no ghost text within 30 s')
end

-- Alternatives: <M-]> asks for the list once (the suggestion on screen first), then <M-]> and
-- <M-[> step through it without asking again, wrapping around.
local ga = fresh_ghost(RETURN_ROW, ' ')
if check('a suggestion to cycle from', ga ~= nil) then
  local function listed()
    return x([[return require('codenook.ghost').position(0)]])
  end
  local function sent()
    return x([[local n = 0
      for _, r in ipairs(T.requests) do n = n + (r.type == 'pending' and 1 or 0) end
      return n]])
  end
  local asked = sent()
  input('<M-]>')
  local pos = wait_for(30000, listed)
  local g = x('return T.ghost()')
  check(
    '<M-]> lists the alternatives and shows the second, the first being the one on screen',
    pos and pos.count >= 2 and pos.index == 2 and g and g.text ~= ga.text and g.col == ga.col,
    vim.inspect({ pos = pos, ghost = g and g.text, first = ga.text })
  )
  if pos and pos.count >= 2 then
    say(('     %d alternatives'):format(pos.count))
    local requests = sent()
    input('<M-[>')
    local back = wait_for(5000, function()
      local p2 = listed()
      return p2 and p2.index == 1 and p2
    end)
    local g1 = x('return T.ghost()')
    check('<M-[> steps back to the first', back and g1 and g1.text == ga.text, vim.inspect(g1))
    input('<M-[>')
    local wrapped = wait_for(5000, function()
      local p3 = listed()
      return p3 and p3.index == pos.count and p3
    end)
    check('<M-[> on the first wraps around to the last', wrapped ~= nil, vim.inspect(listed()))
    check(
      'stepping through the list asks the server nothing',
      sent() == requests and requests > asked,
      ('%d requests before, %d after'):format(requests, sent())
    )
    -- Accepting takes the alternative shown.
    local shown = x('return T.ghost()')
    input('<Tab>')
    local after = wait_for(10000, function()
      local st = x('return T.state()')
      return st.lines[RETURN_ROW + 1] ~= before and st
    end)
    local want = vim.split(before .. shown.text, '\n', { plain = true })
    local got = after and vim.list_slice(after.lines, RETURN_ROW + 1, RETURN_ROW + #want)
    check('<Tab> accepts the alternative shown', got and vim.deep_equal(got, want), vim.inspect({ got = got, want = want }))
  end
end

-- Typing the suggestion's first character keeps the rest shown.
local g4 = fresh_ghost(RETURN_ROW, ' ')
if g4 and #g4.text > 1 then
  input(g4.text:sub(1, 1) == '<' and '<lt>' or g4.text:sub(1, 1))
  local shown = wait_for(5000, function()
    local gg = x('return T.ghost()')
    return gg and gg.col == #before + 1 and gg
  end)
  check(
    'typing the first character of the suggestion shows the rest at once',
    shown and shown.text == g4.text:sub(2),
    vim.inspect(shown)
  )
end

-- Clearing.
if fresh_ghost(RETURN_ROW, ' ') then
  input('<Esc>')
  check('InsertLeave clears the ghost text', wait_for(3000, function()
    return x('return T.ghost() == nil')
  end) == true)
end
if fresh_ghost(RETURN_ROW, ' ') then
  input('<Left>')
  local cleared = wait_for(3000, function()
    return x('return T.ghost() == nil')
  end)
  vim.wait(400) -- longer than the debounce: nothing comes back
  check('moving the cursor away clears the ghost text', cleared and x('return T.ghost() == nil'))
end
if fresh_ghost(RETURN_ROW, ' ') then
  input('<Cmd>new<CR>')
  local cleared = wait_for(3000, function()
    return x([[
      local ns = T.ns()
      local buf = vim.fn.bufnr(...)
      return #vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, {}) == 0
    ]], sample)
  end)
  check('BufLeave clears the ghost text', cleared == true)
  input('<Cmd>close!<CR>')
  wait_for(2000, function()
    return x('return vim.fn.bufnr() == vim.fn.bufnr(...)', sample)
  end)
end

-- A new request cancels the one in flight.
do
  input('<Esc>')
  wait_for(2000, function()
    return x('return vim.api.nvim_get_mode().mode') == 'n'
  end)
  x([[
    vim.api.nvim_buf_set_lines(0, 0, -1, false, ...)
    T.requests = {}
  ]], SAMPLE)
  x('vim.api.nvim_win_set_cursor(0, {...})', RETURN_ROW + 1, 0)
  input([[A <Cmd>lua local g, b = require('codenook.ghost'), vim.api.nvim_get_current_buf(); g.request(b); g.request(b)<CR>]])
  local reqs = wait_for(5000, function()
    local r = x('return T.requests')
    local pending, cancelled = {}, {}
    for _, e in ipairs(r) do
      if e.type == 'pending' then
        pending[#pending + 1] = e.id
      elseif e.type == 'cancel' then
        cancelled[e.id] = true
      end
    end
    return #pending >= 2 and cancelled[pending[1]] and r
  end)
  check('a second request cancels the first ($/cancelRequest)', reqs ~= nil, vim.inspect(x('return T.requests')))
  check('the newest request still shows its suggestion', wait_for(30000, function()
    return x('return T.ghost()')
  end) ~= nil)
end

-- Fallback to the original keys when nothing is shown.
do
  input('<Esc>')
  wait_for(2000, function()
    return x('return vim.api.nvim_get_mode().mode') == 'n'
  end)
  x('vim.api.nvim_buf_set_lines(0, 0, -1, false, ...)', SAMPLE)
  x('vim.api.nvim_win_set_cursor(0, {...})', RETURN_ROW + 1, 0)
  input('A<Tab>')
  local s = wait_for(3000, function()
    local st = x('return T.state()')
    return st.lines[RETURN_ROW + 1] ~= SAMPLE[RETURN_ROW + 1] and st
  end)
  local line = s and s.lines[RETURN_ROW + 1] or ''
  check(
    '<Tab> without a suggestion inserts indentation',
    line:match('^    return[ \t]+$') ~= nil,
    ('line %q'):format(line)
  )
  input('<Esc>')
  wait_for(2000, function()
    return x('return vim.api.nvim_get_mode().mode') == 'n'
  end)
  x('vim.api.nvim_buf_set_lines(0, 0, -1, false, ...)', SAMPLE)
  x('vim.api.nvim_win_set_cursor(0, {...})', RETURN_ROW + 1, 0)
  input('0i<C-Right>')
  local c = wait_for(3000, function()
    local st = x('return T.state()')
    return st.mode == 'i' and st.col > 0 and st
  end)
  check('<C-Right> without a suggestion moves a word right', c and c.col == 4, vim.inspect(c))
  input('<Esc>')
end

-- Java, C, C++ and Lua: the same client attaches and suggests.

local OTHER_LANGUAGES = {
  {
    file = 'Stats.java',
    filetype = 'java',
    lines = {
      'public class Stats {',
      '    /** Returns the sum of a and b. */',
      '    public static int add(int a, int b) {',
      '        return',
      '    }',
      '}',
    },
    row = 3,
  },
  {
    file = 'stats.c',
    filetype = 'c',
    lines = {
      '#include <stdio.h>',
      '',
      '/* Return the sum of a and b. */',
      'int add(int a, int b) {',
      '    return',
      '}',
    },
    row = 4,
  },
  {
    file = 'stats.cpp',
    filetype = 'cpp',
    lines = {
      '#include <vector>',
      '',
      '// Return the sum of a and b.',
      'int add(int a, int b) {',
      '    return',
      '}',
    },
    row = 4,
  },
  {
    file = 'stats.lua',
    filetype = 'lua',
    lines = {
      '-- Return the sum of a and b.',
      'local function add(a, b)',
      '  return',
      'end',
    },
    row = 2,
  },
}

for _, lang in ipairs(OTHER_LANGUAGES) do
  local path = tmp .. '/' .. lang.file
  vim.fn.writefile(lang.lines, path)
  input('<Esc>')
  wait_for(2000, function()
    return x('return vim.api.nvim_get_mode().mode') == 'n'
  end)
  x('vim.cmd.edit(...)', path)
  local attached = wait_for(10000, function()
    return x([[
      local c = T.client()
      return c and c.initialized and { id = c.id, filetype = vim.bo.filetype } or nil
    ]])
  end)
  if
    check(
      ('a %s file (%s) attaches to the codenook server'):format(lang.filetype, lang.file),
      attached and attached.filetype == lang.filetype,
      vim.inspect(attached)
    )
  then
    x('vim.api.nvim_win_set_cursor(0, {...})', lang.row + 1, 0)
    input('A ')
    local ghost = wait_for(30000, function()
      return x('return T.ghost()')
    end)
    check(
      ('typing in the %s file shows a suggestion'):format(lang.filetype),
      ghost and ghost.row == lang.row and ghost.text ~= '',
      vim.inspect(ghost)
    )
    if ghost then
      say(('     %s suggestion: %q'):format(lang.filetype, ghost.text))
    end
  end
end
input('<Esc>')
wait_for(2000, function()
  return x('return vim.api.nvim_get_mode().mode') == 'n'
end)
x('vim.cmd.buffer(vim.fn.bufnr(...))', sample)

-- Hover and code actions: Neovim's own LSP UI, the plugin's client side of the action command.

local CODE = {
  'import math',
  '',
  '',
  'def distance(a, b):',
  '    dx = a[0] - b[0]',
  '    dy = a[1] - b[1]',
  '    total = dx * dx + dy * dy',
  '    return math.sqrt(total)',
  '',
  '',
  'def area(r):',
  '    return math.pi * r * r',
}

local function normal_mode_with(lines, row, col)
  input('<Esc>')
  wait_for(2000, function()
    return x('return vim.api.nvim_get_mode().mode') == 'n'
  end)
  x('vim.api.nvim_buf_set_lines(0, 0, -1, false, ...)', lines)
  x('vim.api.nvim_win_set_cursor(0, {...})', row + 1, col)
end

if caps.hover then
  normal_mode_with(CODE, 10, 5) -- on "area" in "def area(r):"
  x('vim.lsp.buf.hover()')
  local float = wait_for(15000, function()
    return x([[
      for _, w in ipairs(vim.api.nvim_list_wins()) do
        if vim.api.nvim_win_get_config(w).relative ~= '' then
          return table.concat(vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(w), 0, -1, false), '\n')
        end
      end
    ]])
  end)
  check('K / vim.lsp.buf.hover() shows the signature in a float', float and float:find('def area(r):', 1, true), tostring(float))
  x([[
    for _, w in ipairs(vim.api.nvim_list_wins()) do
      if vim.api.nvim_win_get_config(w).relative ~= '' then vim.api.nvim_win_close(w, true) end
    end
  ]])
else
  note('the server does not advertise hoverProvider; hover not tested')
end

if caps.code_action and vim.list_contains(caps.commands, 'codenook.runAction') then
  x([[
    T.edits, T.action, T.on_edit = 0, nil, nil
    local orig = vim.lsp.handlers['workspace/applyEdit']
    vim.lsp.handlers['workspace/applyEdit'] = function(...)
      local r = orig(...)
      T.edits = T.edits + 1
      if T.on_edit then T.on_edit() end
      return r
    end
    vim.api.nvim_create_autocmd('User', { pattern = 'CodenookAction', callback = function(a)
      T.action = a.data
    end })
  ]])
  normal_mode_with(CODE, 4, 4) -- inside distance()
  local titles = x([[
    local c = T.client()
    local params = vim.lsp.util.make_range_params(0, c.offset_encoding)
    params.context = { diagnostics = {} }
    local r = c:request_sync('textDocument/codeAction', params, 5000)
    local out = {}
    for _, a in ipairs(r and r.result or {}) do out[#out + 1] = a.title end
    return out
  ]])
  check(
    'code actions are listed',
    vim.list_contains(titles, 'codenook: Rewrite / simplify')
      and vim.list_contains(titles, 'codenook: Edit with instruction…'),
    vim.inspect(titles)
  )

  -- Pick "Rewrite / simplify" through vim.lsp.buf.code_action(), as a user would.
  local messages_before = x([[return vim.fn.execute('messages')]])
  x([[vim.lsp.buf.code_action({ apply = true, filter = function(a) return a.title == 'codenook: Rewrite / simplify' end })]])
  local done = wait_for(90000, function()
    return x('return T.action')
  end)
  local result = done and done.result
  local buf_text = table.concat(x('return vim.api.nvim_buf_get_lines(0, 0, -1, false)'), '\n')
  local code_text = table.concat(CODE, '\n')
  if check('the picked action runs on the server and answers', result and not done.err, vim.inspect(done)) then
    local status, edits = result.status, x('return T.edits')
    say(('     status: %s, %d streamed edits'):format(status, edits))
    if status == 'applied' then
      local start = code_text:find('def distance', 1, true)
      local last = '    return math.sqrt(total)'
      local stop = code_text:find(last, 1, true) + #last
      check(
        'the streamed edit lands in the buffer exactly as the server reports',
        buf_text == code_text:sub(1, start - 1) .. result.text .. code_text:sub(stop),
        ('buffer:\n%s\nresult.text:\n%s'):format(buf_text, result.text)
      )
      check('the edit was streamed in several workspace/applyEdit', edits >= 2, tostring(edits))
    else
      check(('a %s reply leaves the original code'):format(status), buf_text == code_text, buf_text)
    end
  end
  local messages = x([[return vim.fn.execute('messages')]])
  check(
    'streamed edits do not print "Workspace edit" messages',
    not messages:sub(#messages_before + 1):find('Workspace edit', 1, true),
    messages
  )

  -- "Edit with instruction…": the plugin asks for the instruction; :Codenook cancel stops it.
  normal_mode_with(CODE, 4, 4)
  x([[
    T.action, T.edits, T.prompt = nil, 0, nil
    vim.ui.input = function(opts, on_confirm)
      T.prompt = opts.prompt
      on_confirm('Rewrite this with a long comment explaining every line.')
    end
    T.on_edit = function()
      T.on_edit = nil
      vim.schedule(function() vim.cmd('Codenook cancel') end)
    end
  ]])
  x([[vim.lsp.buf.code_action({ apply = true, filter = function(a) return a.title == 'codenook: Edit with instruction…' end })]])
  local done2 = wait_for(90000, function()
    return x('return T.action')
  end)
  check('"Edit with instruction…" asks for the instruction', x('return T.prompt') ~= nil)
  local r2 = done2 and done2.result
  local edits2 = x('return T.edits')
  buf_text = table.concat(x('return vim.api.nvim_buf_get_lines(0, 0, -1, false)'), '\n')
  if not r2 then
    check('the instructed action answers', false, vim.inspect(done2))
  elseif edits2 == 0 then
    note(('the model streamed nothing to cancel (status %s)'):format(tostring(r2.status)))
  elseif r2.status == 'cancelled' then
    check(':Codenook cancel stops the action and the original code is back', buf_text == code_text, buf_text)
  else
    note(('the reply was complete before the cancel arrived (status %s)'):format(tostring(r2.status)))
  end

  -- The actions' work-done progress reached LspProgress.
  local p = x('return T.progress')
  local began, ended = {}, {}
  for _, e in ipairs(p) do
    if type(e.token) == 'string' and e.token:find('^codenook%-') and e.token ~= 'codenook-model-load' then
      if e.kind == 'begin' then began[e.token] = true end
      if e.kind == 'end' then ended[e.token] = true end
    end
  end
  local n, all_ended = 0, true
  for token in pairs(began) do
    n = n + 1
    all_ended = all_ended and ended[token] == true
  end
  check('code-action progress shows through LspProgress (begin ... end)', n >= 1 and all_ended, vim.inspect(p))
else
  note('the server does not advertise code actions with codenook.runAction; not tested')
end

-- Model-load progress, when loading was slow enough to be seen.
do
  local p = x('return T.progress')
  local began, ended = false, false
  for _, e in ipairs(p) do
    if e.token == 'codenook-model-load' then
      began = began or e.kind == 'begin'
      ended = ended or e.kind == 'end'
    end
  end
  if began then
    check('LspProgress: the model-load progress began and ended', ended, vim.inspect(p))
  else
    note('the model had loaded before the first codenook/stats answer; no load progress to see')
  end
end

-- :Codenook -------------------------------------------------------------------------------------

do
  -- Wait for the engine to finish what it does in the background (hover explanations,
  -- speculative guesses) so the state reads idle.
  wait_for(60000, function()
    local s = x('return T.stats()')
    return s and s.state == 'idle'
  end)
  local out = x([[return vim.fn.execute('Codenook status')]])
  check(
    ':Codenook status shows the engine state and the model',
    out:find('state: idle', 1, true) and out:find('SmolLM2', 1, true) and out:find('completions:', 1, true),
    out
  )
  say('     ' .. out:gsub('^\n+', ''):gsub('\n', '\n     '))
  local st = x([[return require('codenook').status()]])
  check('status() shows the last generation speed', st:match('^codenook: idle %d+ tok/s$') ~= nil, st)

  local complete = x([[return vim.fn.getcompletion('Codenook ', 'cmdline')]])
  if vim.list_contains(caps.commands, 'codenook.agentTask') then
    check(
      ':Codenook completes "agent", "undo" and "transcript" when the server offers agent tasks',
      vim.list_contains(complete, 'agent') and vim.list_contains(complete, 'undo')
        and vim.list_contains(complete, 'transcript'),
      vim.inspect(complete)
    )
  else
    check(':Codenook does not offer "agent" when the server has no agent tasks', not vim.list_contains(complete, 'agent'), vim.inspect(complete))
    local msg = x([[
      local n = #T.notes
      vim.cmd('Codenook agent add a docstring')
      return T.notes[n + 1]
    ]])
    check(
      ':Codenook task says clearly that the server has no agent tasks',
      msg and msg.level == vim.log.levels.ERROR and msg.msg:find('does not offer agent tasks', 1, true),
      vim.inspect(msg)
    )
  end
end

-- Settings changed at run time reach the server (workspace/didChangeConfiguration).
do
  x([[require('codenook').set({ completion = { enabled = false } }); T.requests = {}]])
  normal_mode_with(SAMPLE, RETURN_ROW, 0)
  input('A ')
  local answered = wait_for(10000, function()
    for _, e in ipairs(x('return T.requests')) do
      if e.type == 'complete' then
        return true
      end
    end
  end)
  vim.wait(200)
  check(
    'set({completion = {enabled = false}}) turns suggestions off',
    answered and x('return T.ghost() == nil'),
    vim.inspect({ answered = answered, ghost = x('return T.ghost()') })
  )
  x([[require('codenook').set({ completion = { enabled = true } })]])
  input('<BS> ')
  check('set({completion = {enabled = true}}) turns them back on', wait_for(30000, function()
    return x('return T.ghost()')
  end) ~= nil)
  input('<Esc>')
end

-- codenook/problem: vim.notify with its level, naming the setting; no message wording read.
do
  local shown = x([[
    local n = #T.notes
    local handler = vim.lsp.config.codenook.handlers['codenook/problem']
    handler(nil, { type = 2, message = 'codenook: any wording at all', code = 'invalid-setting',
                   setting = 'completion.maxLines' }, { client_id = T.client().id })
    handler(nil, { type = 3, message = 'codenook: nothing to open', code = 'file-too-large',
                   setting = vim.NIL }, { client_id = T.client().id })
    local out = vim.list_slice(T.notes, n + 1)
    T.notes = vim.list_slice(T.notes, 1, n)
    return out
  ]])
  check(
    'a codenook/problem is shown at its level and names its setting',
    #shown == 2
      and shown[1].level == vim.log.levels.WARN
      and shown[1].msg:find('codenook: any wording at all', 1, true) == 1
      and shown[1].msg:find('setting: completion.maxLines', 1, true) ~= nil
      and shown[2].level == vim.log.levels.INFO
      and not shown[2].msg:find('setting', 1, true),
    vim.inspect(shown)
  )

  -- The real server: a model that does not exist.
  local before = x('return #T.notes')
  x([[require('codenook').set({ model = { path = ... } })]], tmp .. '/missing.gguf')
  local problem = wait_for(60000, function()
    return x([[
      local p = require('codenook').last_problem()
      return p and p.code == 'model-unavailable' and p or nil
    ]])
  end)
  local notes = x('local n = ...; return vim.list_slice(T.notes, n + 1)', before)
  local notified = notes[#notes]
  if problem then
    check(
      'a missing model: codenook/problem model-unavailable with the setting model.path, shown as an error',
      problem.code == 'model-unavailable'
        and problem.setting == 'model.path'
        and notified
        and notified.level == vim.log.levels.ERROR
        and notified.msg:find('setting: model.path', 1, true) ~= nil,
      vim.inspect({ problem = problem, notes = notes })
    )
  else
    check('a missing model is reported with codenook/problem', false, vim.inspect({ notes = notes }))
  end
  x([[
    local n = ...
    T.notes = vim.list_slice(T.notes, 1, n)
    require('codenook').set({ model = { path = '' } })
  ]], before)
  check('with model.path back to the default the engine is idle again', wait_for(120000, function()
    local s = x('return T.stats()')
    return s and s.state == 'idle'
  end) ~= nil)
end

-- Trust: an untrusted workspace root gets no indexing and no agent tasks; :Codenook trust. ------

do
  -- The option's shapes, decided without a server.
  local shapes = x([[
    local c = require('codenook')
    local root, saved = ..., c.config.trusted
    local out = {}
    c.config.trusted = nil; out.db_default = c.trusted(root)
    c.config.trusted = true; out.all = c.trusted(root)
    c.config.trusted = false; out.none = c.trusted(root)
    c.config.trusted = { vim.fs.dirname(root) }; out.list_parent = c.trusted(root)
    c.config.trusted = { root .. '-other' }; out.list_other = c.trusted(root)
    c.config.trusted = function(r) return r == root end; out.fn = c.trusted(root)
    c.config.trusted = function() error('boom') end; out.fn_error = c.trusted(root)
    c.config.trusted = true; out.no_root = c.trusted(nil)
    c.config.trusted = saved
    out.restricted = c.restricted({ ['index.enabled'] = true, index = { maxFiles = 5 }, completion = { maxLines = 2 } })
    return out
  ]], tmp)
  check(
    'trusted: Neovim\'s trust database by default, true/false, a list of directories, a function (errors: untrusted), no root: untrusted',
    shapes.db_default == false and shapes.all == true and shapes.none == false and shapes.list_parent == true
      and shapes.list_other == false and shapes.fn == true and shapes.fn_error == false and shapes.no_root == false
      and vim.deep_equal(shapes.restricted, { index = { maxFiles = 5, enabled = false }, completion = { maxLines = 2 } }),
    vim.inspect(shapes)
  )
  -- The function's error was reported; keep it out of the notes checked below.
  x([[T.notes = vim.tbl_filter(function(n) return not n.msg:find('trusted() function failed', 1, true) end, T.notes)]])

  local proj = vim.uv.fs_realpath(tmp) .. '/proj'
  vim.fn.mkdir(proj .. '/.git', 'p')
  vim.fn.writefile({ 'def helper(x):', '    return x * 2' }, proj .. '/util.py')
  vim.fn.writefile({ 'from util import helper', '', 'print(helper(2))' }, proj .. '/main.py')
  x([[
    T.configs = {}
    vim.api.nvim_create_autocmd('LspNotify', { callback = function(a)
      if a.data.method == 'workspace/didChangeConfiguration' then
        table.insert(T.configs, { client_id = a.data.client_id, params = a.data.params })
      end
    end })
  ]])
  input('<Esc>')
  x('vim.cmd.edit(...)', proj .. '/main.py')
  local started = wait_for(20000, function()
    return x([[
      local c = T.client()
      if not (c and c.initialized) then return nil end
      return { id = c.id, root = c.root_dir, index = vim.tbl_get(c.settings, 'codenook', 'index', 'enabled') }
    ]])
  end)
  check(
    'a root that is not in Neovim\'s trust database gets its own server with index.enabled = false',
    started and started.root == proj and started.index == false,
    vim.inspect(started)
  )
  local told = x([[
    for _, n in ipairs(T.notes) do
      if n.msg:find('is not trusted', 1, true) then return n end
    end
  ]])
  check(
    'the user is told once, at INFO level, how to trust it',
    told and told.level == vim.log.levels.INFO and told.msg:find(proj, 1, true) and told.msg:find(':Codenook trust', 1, true),
    vim.inspect(told)
  )
  local stats = started and wait_for(60000, function()
    local s = x('return T.stats()')
    return s and s.state == 'idle' and s
  end)
  vim.wait(1000)
  stats = x('return T.stats()')
  check(
    'the untrusted root is not indexed (codenook/stats has no index)',
    stats and type(stats.index) == 'table' and next(stats.index) == nil,
    vim.inspect(stats and stats.index)
  )

  -- set() cannot turn indexing on for it.
  x([[T.configs = {}; require('codenook').set({ index = { enabled = true } })]])
  local sent = x([[
    local id = T.client().id
    for _, e in ipairs(T.configs) do if e.client_id == id then return e.params end end
  ]])
  check(
    'set({ index = { enabled = true } }) sends index.enabled = false to the untrusted root\'s server',
    sent and vim.tbl_get(sent, 'settings', 'codenook', 'index', 'enabled') == false
      and x([[return vim.tbl_get(T.client().settings, 'codenook', 'index', 'enabled')]]) == false,
    vim.inspect(sent)
  )

  -- Agent tasks: refused in an untrusted root even when the server offers them.
  local refused = x([[
    local c = T.client()
    local saved = c.server_capabilities.executeCommandProvider
    c.server_capabilities.executeCommandProvider = { commands = { 'codenook.agentTask' } }
    local n, sent = #T.notes, false
    local orig_exec, orig_request = c.exec_cmd, c.request
    c.exec_cmd = function() sent = true end
    c.request = function(self, method, ...)
      if method == 'workspace/executeCommand' then sent = true; return true, 0 end
      return orig_request(self, method, ...)
    end
    vim.cmd('Codenook task delete everything')
    c.exec_cmd, c.request = orig_exec, orig_request
    c.server_capabilities.executeCommandProvider = saved
    return { note = T.notes[n + 1], sent = sent }
  ]])
  check(
    ':Codenook task is refused in an untrusted root',
    refused and not refused.sent and refused.note and refused.note.msg:find('not trusted', 1, true),
    vim.inspect(refused)
  )

  -- :Codenook trust: Neovim's trust database, and the running server indexes at once.
  x([[T.configs = {}]])
  x('vim.cmd("Codenook trust")')
  local db = table.concat(vim.fn.readfile(tmp .. '/state/nvim/trust'), '\n')
  check(
    ':Codenook trust records the root in Neovim\'s trust database as a directory',
    db:find('directory ' .. proj, 1, true) ~= nil and x('return require("codenook").in_trust_database(...)', proj) == true,
    db
  )
  local on = x([[
    local id = T.client().id
    for _, e in ipairs(T.configs) do if e.client_id == id then return e.params end end
  ]])
  check(
    ':Codenook trust sends index.enabled = true to that root\'s server',
    on and vim.tbl_get(on, 'settings', 'codenook', 'index', 'enabled') == true
      and x([[return vim.tbl_get(T.client().settings, 'codenook', 'index', 'enabled')]]) ~= false,
    vim.inspect(on)
  )
  local indexed = wait_for(30000, function()
    local s = x('return T.stats()')
    local entry = s and type(s.index) == 'table' and next(s.index) and s.index
    return entry or nil
  end)
  check('after :Codenook trust the server indexes the root', indexed ~= nil, vim.inspect(x('return T.stats()')))
  x([[T.notes = vim.tbl_filter(function(n) return not n.msg:find('is trusted', 1, true) end, T.notes)]])

  -- Trusted from the start: a root in the database gets the real settings at once.
  x([[
    for _, c in ipairs(vim.lsp.get_clients({ name = 'codenook' })) do
      if c.root_dir == ... then c:stop() end
    end
  ]], proj)
  wait_for(5000, function()
    return x('return #vim.lsp.get_clients({ name = "codenook", bufnr = 0 }) == 0')
  end)
  x('vim.cmd.edit({ bang = true })')
  local again = wait_for(20000, function()
    return x([[
      local c = T.client()
      if not (c and c.initialized) then return nil end
      return { root = c.root_dir, index = vim.tbl_get(c.settings, 'codenook', 'index', 'enabled') or 'unset' }
    ]])
  end)
  check(
    'a root in Neovim\'s trust database starts with the real settings',
    again and again.root == proj and again.index ~= false,
    vim.inspect(again)
  )
  x([[
    for _, c in ipairs(vim.lsp.get_clients({ name = 'codenook' })) do
      if c.root_dir == ... then c:stop() end
    end
  ]], proj)
  x('vim.cmd.buffer(vim.fn.bufnr(...))', sample)
end

-- :checkhealth codenook, and status() outside codenook buffers.
do
  local report = x([[
    vim.cmd('checkhealth codenook')
    local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
    vim.cmd('bwipeout!')
    return text
  ]])
  check(
    ':checkhealth codenook reports the server command and the engine',
    report:find('server command:', 1, true) and report:find('engine idle', 1, true)
      and not report:find('ERROR', 1, true),
    report
  )
  local other = x([[
    vim.cmd('enew')
    local s = require('codenook').status()
    vim.cmd('bwipeout!')
    return s
  ]])
  check('status() is empty in a buffer the server does not serve', other == '', other)
end

-- Agent tasks: arguments, the transcript buffer, and the real LSP layer with a scripted engine.

do
  -- The argument of codenook.agentTask, without a server.
  local shape = x([[
    local agent = require('codenook.agent')
    local buf = vim.api.nvim_create_buf(true, false)
    vim.api.nvim_set_current_buf(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'héllo wörld', 'second line', 'third' })
    vim.api.nvim_buf_set_name(buf, ...)
    vim.lsp.util.buf_versions[buf] = 7
    local client = { attached_buffers = { [buf] = true }, offset_encoding = 'utf-16' }
    local out = {}
    out.plain = agent.arguments(client, buf, 'do it', agent.selection(buf, { range = 0 }, 'utf-16'))
    out.unattached = agent.arguments({ attached_buffers = {} }, buf, 'do it', nil)
    -- Charwise visual selection from "é" to "ö", then :'<,'>.
    vim.api.nvim_win_set_cursor(0, { 1, 1 })
    vim.cmd('normal! v6l\27')
    out.v16 = agent.selection(buf, { range = 2, line1 = 1, line2 = 1 }, 'utf-16')
    out.v8 = agent.selection(buf, { range = 2, line1 = 1, line2 = 1 }, 'utf-8')
    out.with_range = agent.arguments(client, buf, 'do it', out.v16)
    -- Linewise.
    vim.cmd('normal! ggVj\27')
    out.V = agent.selection(buf, { range = 2, line1 = 1, line2 = 2 }, 'utf-16')
    -- A typed range other than the last selection: whole lines.
    out.typed = agent.selection(buf, { range = 2, line1 = 2, line2 = 3 }, 'utf-16')
    out.one = agent.selection(buf, { range = 1, line1 = 3, line2 = 3 }, 'utf-16')
    vim.lsp.util.buf_versions[buf] = nil
    vim.cmd('bwipeout! ' .. buf)
    return out
  ]], tmp .. '/shape.py')
  local uri = vim.uri_from_fname(tmp .. '/shape.py')
  local function r(l1, c1, l2, c2)
    return { start = { line = l1, character = c1 }, ['end'] = { line = l2, character = c2 } }
  end
  check(
    'agent arguments: {task, uri, version} of the buffer, no range without one',
    vim.deep_equal(shape.plain, { task = 'do it', uri = uri, version = 7 }),
    vim.inspect(shape.plain)
  )
  check(
    'agent arguments: only {task} when the client does not have the buffer open',
    vim.deep_equal(shape.unattached, { task = 'do it' }),
    vim.inspect(shape.unattached)
  )
  check(
    'agent range: a charwise visual selection, end exclusive, in the client\'s encoding',
    vim.deep_equal(shape.v16, r(0, 1, 0, 8)) and vim.deep_equal(shape.v8, r(0, 1, 0, 10))
      and vim.deep_equal(shape.with_range, { task = 'do it', uri = uri, version = 7, range = r(0, 1, 0, 8) }),
    vim.inspect({ v16 = shape.v16, v8 = shape.v8, with_range = shape.with_range })
  )
  check(
    'agent range: linewise selection and typed ranges cover whole lines',
    vim.deep_equal(shape.V, r(0, 0, 1, 11)) and vim.deep_equal(shape.typed, r(1, 0, 2, 5))
      and vim.deep_equal(shape.one, r(2, 0, 2, 5)),
    vim.inspect({ V = shape.V, typed = shape.typed, one = shape.one })
  )

  -- A mapping that runs while visual mode is on (<Cmd>) sends that selection.
  x([[
    local buf = vim.api.nvim_create_buf(true, true)
    vim.api.nvim_set_current_buf(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'abc def', 'ghi' })
    vim.api.nvim_win_set_cursor(0, { 1, 4 })
    T.sel = nil
  ]])
  input([[vj<Cmd>lua T.sel = require('codenook.agent').selection(0, { range = 0 }, 'utf-8') or false<CR><Esc>]])
  local sel = wait_for(3000, function()
    return x('return T.sel')
  end)
  check(
    'agent range: from a <Cmd> mapping in visual mode, the selection being made',
    vim.deep_equal(sel, r(0, 4, 1, 3)),
    vim.inspect(sel)
  )
  x('vim.cmd("bwipeout!")')

  -- The transcript buffer, rendered from notifications.
  local tr = x([[
    local agent = require('codenook.agent')
    local win0 = vim.api.nvim_get_current_win()
    local handler = vim.lsp.config.codenook.handlers['codenook/agentTranscript']
    local ctx = { client_id = -1, method = 'codenook/agentTranscript' }
    local function send(kind, text) handler(nil, { taskId = 'unit1', kind = kind, text = text }, ctx) end
    send('task', 'rename a to b')
    send('model', 'Let me')
    send('model', ' look.\nI will read')
    send('model', ' it.\n')
    send('call', 'read_file path=a.py')
    send('result', 'line one\nline two\n')
    send('model', 'Done')
    send('error', 'no such file: b.py')
    send('summary', 'Renamed a to b.')
    local buf = agent.transcript('unit1')
    local wins = vim.fn.win_findbuf(buf)
    local out = {
      lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false),
      name = vim.api.nvim_buf_get_name(buf),
      buftype = vim.bo[buf].buftype, bufhidden = vim.bo[buf].bufhidden,
      swapfile = vim.bo[buf].swapfile, modifiable = vim.bo[buf].modifiable,
      wins = #wins, focus_kept = vim.api.nvim_get_current_win() == win0,
      cursor = wins[1] and vim.api.nvim_win_get_cursor(wins[1])[1],
    }
    -- Following the end: with the cursor on the last line, new text keeps it there; moved
    -- up (and the end out of view), it stays.
    for i = 1, 40 do send('result', 'row ' .. i) end
    local n = vim.api.nvim_buf_line_count(buf)
    out.followed = wins[1] and vim.api.nvim_win_get_cursor(wins[1])[1] == n
    vim.api.nvim_win_set_cursor(wins[1], { 1, 0 })
    vim.api.nvim_win_call(wins[1], function() vim.cmd('normal! zt') end)
    vim.cmd('redraw')
    send('status', 'more')
    out.stayed = vim.api.nvim_win_get_cursor(wins[1])[1] == 1
    vim.api.nvim_win_close(wins[1], true)
    vim.cmd('bwipeout! ' .. buf)
    return out
  ]])
  check(
    'transcript: model deltas join on one line (newlines start lines), other kinds are prefixed entries',
    vim.deep_equal(tr.lines, {
      'Task: rename a to b',
      'Let me look.',
      'I will read it.',
      '▶ read_file path=a.py',
      '◀ line one',
      '  line two',
      'Done',
      '✖ no such file: b.py',
      '✔ Renamed a to b.',
    }),
    vim.inspect(tr.lines)
  )
  check(
    'transcript: a scratch buffer codenook://agent/<taskId> (nofile, bufhidden=hide, no swap file, not modifiable)',
    tr.name == 'codenook://agent/unit1' and tr.buftype == 'nofile' and tr.bufhidden == 'hide'
      and tr.swapfile == false and tr.modifiable == false,
    vim.inspect(tr)
  )
  check(
    'transcript: shown in a split that does not take the focus, and follows the end',
    tr.wins == 1 and tr.focus_kept and tr.cursor == #tr.lines and tr.followed and tr.stayed,
    vim.inspect(tr)
  )

end

-- End-to-end: the real LSP layer (tests/serve_fake.py) with scripted model replies.
local function agent_e2e()
  local function r(l1, c1, l2, c2)
    return { start = { line = l1, character = c1 }, ['end'] = { line = l2, character = c2 } }
  end
  local root = vim.fs.dirname(vim.fs.dirname(plugin))
  local python = root .. '/.venv/bin/python'
  local proj = vim.uv.fs_realpath(tmp) .. '/agentproj'
  vim.fn.mkdir(proj .. '/.git', 'p')
  local MAIN = { 'def old_name(x):', '    return x + 1', '', '', 'print(old_name(2))' }
  vim.fn.writefile(MAIN, proj .. '/main.py')
  local function call(name, params)
    local out = { '<tool_call>', '<function=' .. name .. '>' }
    for _, p in ipairs(params) do
      vim.list_extend(out, { '<parameter=' .. p[1] .. '>', p[2], '</parameter>' })
    end
    vim.list_extend(out, { '</function>', '</tool_call>' })
    return table.concat(out, '\n')
  end
  local replies = {
    'I will read main.py first.\n' .. call('read_file', { { 'path', 'main.py' } }),
    call('edit_file', { { 'path', 'main.py' }, { 'old_text', 'def old_name(' }, { 'new_text', 'def new_name(' } }),
    call('create_file', { { 'path', 'helpers.py' }, { 'content', 'def helper():\n    return 1\n' } }),
    call('finish', { { 'summary', 'Renamed old_name to new_name.' } }),
    call('run_command', { { 'command', 'echo hi' } }),
    call('finish', { { 'summary', 'Did not run it.' } }),
  }

  --- Stop every codenook client, start the scripted server with `script`, open main.py.
  local function start_fake(script)
    input('<Esc>')
    return x([[
      local python, server, script, main = ...
      for _, c in ipairs(vim.lsp.get_clients()) do c:stop(true) end
      vim.wait(5000, function() return #vim.lsp.get_clients() == 0 end, 20)
      vim.env.CODENOOK_FAKE = vim.json.encode(script)
      require('codenook').setup({
        cmd = { python, server },
        filetypes = { 'python' },
        native = false,
        trusted = true,
        -- The scripted engine counts a byte as a token: leave room in its 4096-token context.
        settings = { agent = { stepTokens = 256 } },
      })
      vim.cmd('silent! %bwipeout!')
      vim.cmd.edit(main)
      return vim.fn.bufnr()
    ]], python, root .. '/tests/serve_fake.py', script, proj .. '/main.py')
  end

  local main_buf = start_fake({ replies = replies })
  local ready = wait_for(20000, function()
    return x([[
      local c = T.client()
      if not (c and c.initialized) then return nil end
      local s = T.stats()
      if not (s and s.state == 'idle') then return nil end
      return (c.server_capabilities.executeCommandProvider or {}).commands or {}
    ]])
  end)
  if not check(
    'the scripted server (tests/serve_fake.py) starts and offers codenook.agentTask and codenook.agentUndo',
    ready and vim.list_contains(ready, 'codenook.agentTask') and vim.list_contains(ready, 'codenook.agentUndo'),
    vim.inspect(ready)
  ) then
    return
  end

  x([[
    T.agent, T.undo, T.sent, T.steps = nil, nil, {}, {}
    if not T.agent_autocmds then
      T.agent_autocmds = true
      vim.api.nvim_create_autocmd('User', { pattern = 'CodenookAgent', callback = function(a) T.agent = a.data end })
      vim.api.nvim_create_autocmd('User', { pattern = 'CodenookUndo', callback = function(a) T.undo = a.data end })
      vim.api.nvim_create_autocmd('LspProgress', { callback = function(a)
        local v = a.data.params.value
        if type(v) == 'table' and v.message then table.insert(T.steps, v.message) end
      end })
    end
    local c = T.client()
    local orig = c.request
    c.request = function(self, method, params, ...)
      if method == 'workspace/executeCommand' then
        table.insert(T.sent, { params = vim.deepcopy(params), version = vim.lsp.util.buf_versions[vim.fn.bufnr()] })
      end
      return orig(self, method, params, ...)
    end
    T.n_notes = #T.notes
    T.win = vim.api.nvim_get_current_win()
    vim.cmd('Codenook agent rename old_name to new_name')
  ]])
  local done = wait_for(20000, function()
    return x('return T.agent')
  end)
  local res = done and done.result
  local sent = x('return T.sent[1]')
  local args = sent and sent.params.arguments[1]
  check(
    ':Codenook agent sends codenook.agentTask {task, uri, version} (no range without a selection)',
    sent and sent.params.command == 'codenook.agentTask'
      and vim.deep_equal(args, { task = 'rename old_name to new_name', uri = vim.uri_from_fname(proj .. '/main.py'), version = sent.version })
      and type(sent.version) == 'number',
    vim.inspect(sent)
  )
  if not check('the agent task ends with status done', res and res.status == 'done' and not done.err, vim.inspect(done)) then
    return
  end
  local after = x([[
    local buf = ...
    return { lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false), modified = vim.bo[buf].modified,
             focus_kept = vim.api.nvim_get_current_win() == T.win and vim.fn.bufnr() == buf }
  ]], main_buf)
  local want = vim.deepcopy(MAIN)
  want[1] = 'def new_name(x):'
  check(
    'the edit is in the buffer of main.py, unsaved; the file on disk is unchanged',
    vim.deep_equal(after.lines, want) and after.modified == true
      and vim.deep_equal(vim.fn.readfile(proj .. '/main.py'), MAIN),
    vim.inspect({ after = after, disk = vim.fn.readfile(proj .. '/main.py') })
  )
  check(
    'the answer names main.py as edited with its original text, helpers.py as created',
    #res.changes == 2
      and res.changes[1].path == 'main.py' and res.changes[1].created == false
      and res.changes[1].original == table.concat(MAIN, '\n') .. '\n'
      and res.changes[2].path == 'helpers.py' and res.changes[2].created == true
      and res.changes[2].original == nil,
    vim.inspect(res.changes)
  )
  local created = x([[
    local buf = vim.fn.bufnr(...)
    return buf > 0 and { lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false), modified = vim.bo[buf].modified } or nil
  ]], proj .. '/helpers.py')
  check(
    'the created file is in a buffer, unsaved (Neovim creates it empty on disk)',
    created and created.lines[1] == 'def helper():' and created.lines[2] == '    return 1'
      and created.modified == true and vim.deep_equal(vim.fn.readfile(proj .. '/helpers.py'), {}),
    vim.inspect({ created = created, disk = vim.fn.readfile(proj .. '/helpers.py') })
  )
  local tbuf = done.transcript
  local transcript = x([[
    local buf = ...
    if not buf then return nil end
    return { lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false), name = vim.api.nvim_buf_get_name(buf),
             shown = #vim.fn.win_findbuf(buf) }
  ]], tbuf)
  local text = transcript and table.concat(transcript.lines, '\n') or ''
  check(
    'the transcript buffer shows the task, the model text, the calls, their results and the summary',
    transcript and transcript.name == 'codenook://agent/' .. res.taskId and transcript.shown == 1
      and text:find('Task: rename old_name to new_name', 1, true)
      and text:find('I will read main.py first.', 1, true)
      and text:find('▶ read_file path=main.py', 1, true)
      and text:find('◀ ', 1, true)
      and text:find('▶ edit_file path=main.py', 1, true)
      and text:find('✔ Renamed old_name to new_name.', 1, true)
      and text:find('▶ create_file path=helpers.py', 1, true)
      and text:find('■ done after 4 steps, 2 files changed', 1, true),
    text
  )
  check('the task ran without taking the focus from main.py', after.focus_kept, vim.inspect(after))
  local qf = x([[
    local q = vim.fn.getqflist({ title = 1, items = 1 })
    local out = { title = q.title, items = {} }
    for _, it in ipairs(q.items) do
      out.items[#out.items + 1] = { name = vim.api.nvim_buf_get_name(it.bufnr), lnum = it.lnum, text = it.text }
    end
    return out
  ]])
  check(
    'the quickfix list "codenook agent: <task>" has main.py "edited" at the changed line, helpers.py "created"',
    qf.title == 'codenook agent: rename old_name to new_name' and #qf.items == 2
      and qf.items[1].name == proj .. '/main.py' and qf.items[1].text == 'edited' and qf.items[1].lnum == 1
      and qf.items[2].name == proj .. '/helpers.py' and qf.items[2].text == 'created',
    vim.inspect(qf)
  )
  local notes = x('return vim.list_slice(T.notes, T.n_notes + 1)')
  check(
    'the summary is notified (INFO)',
    #notes >= 1 and notes[#notes].level == vim.log.levels.INFO
      and notes[#notes].msg:find('Renamed old_name to new_name.', 1, true)
      and notes[#notes].msg:find('2 files changed', 1, true),
    vim.inspect(notes)
  )
  local steps = x('return T.steps')
  local named = vim.tbl_filter(function(m)
    return m:find('main.py', 1, true) ~= nil
  end, steps)
  check(
    'the agent\'s steps arrive as work-done progress messages (reading, editing main.py)',
    #named >= 2,
    vim.inspect(steps)
  )

  -- :Codenook undo puts main.py back (in the buffer) and removes helpers.py.
  x('T.n_notes = #T.notes; vim.cmd("Codenook undo")')
  local undone = wait_for(10000, function()
    return x('return T.undo')
  end)
  local restored = x('return vim.api.nvim_buf_get_lines(..., 0, -1, false)', main_buf)
  local unotes = x('return vim.list_slice(T.notes, T.n_notes + 1)')
  check(
    ':Codenook undo restores main.py in its buffer, removes the created helpers.py and says so',
    undone and undone.result and #undone.result.restored == 2 and #undone.result.refused == 0
      and vim.deep_equal(restored, MAIN) and vim.fn.filereadable(proj .. '/helpers.py') == 0
      and x('return vim.fn.bufloaded(...)', proj .. '/helpers.py') == 0
      and unotes[1] and unotes[1].level == vim.log.levels.INFO and unotes[1].msg:find('main.py', 1, true)
      and unotes[1].msg:find('helpers.py', 1, true),
    vim.inspect({ undone = undone, buffer = restored, notes = unotes, disk = vim.fn.filereadable(proj .. '/helpers.py') })
  )
  x('T.n_notes = #T.notes; T.undo = nil; vim.cmd("Codenook undo")')
  local again = wait_for(10000, function()
    return x('return T.undo')
  end)
  local anotes = x('return vim.list_slice(T.notes, T.n_notes + 1)')
  check(
    'a second :Codenook undo is refused with the server\'s reason',
    again and again.err and anotes[1] and anotes[1].msg:find('undone already', 1, true),
    vim.inspect({ again = again, notes = anotes })
  )
  x('T.notes = vim.list_slice(T.notes, 1, T.n_notes)')

  -- A command the agent wants to run: window/showMessageRequest through vim.ui.select; "Deny".
  x([[
    T.agent, T.asked = nil, nil
    vim.ui.select = function(items, opts, on_choice)
      local titles = {}
      for i, item in ipairs(items) do titles[i] = opts.format_item and opts.format_item(item) or tostring(item) end
      T.asked = { prompt = opts.prompt, titles = titles }
      for i, t in ipairs(titles) do
        if t == 'Deny' then return on_choice(items[i], i) end
      end
      on_choice(nil, nil)
    end
    vim.ui.input = function(opts, on_confirm)
      T.input_prompt = opts.prompt
      on_confirm('run the tests')
    end
    vim.cmd('1,2Codenook agent')
  ]])
  local denied = wait_for(20000, function()
    return x('return T.agent')
  end)
  local asked = x('return T.asked')
  check(
    'window/showMessageRequest asks with vim.ui.select: Run / Always for this task / Deny',
    asked and vim.deep_equal(asked.titles, { 'Run', 'Always for this task', 'Deny' })
      and asked.prompt:find('echo hi', 1, true),
    vim.inspect(asked)
  )
  local dtext = denied and denied.transcript
    and table.concat(x('return vim.api.nvim_buf_get_lines(..., 0, -1, false)', denied.transcript), '\n') or ''
  check(
    'answering Deny: the command does not run and the transcript shows the denial',
    denied and denied.result and denied.result.status == 'done'
      and dtext:find('✖ the user did not allow running `echo hi`', 1, true)
      and dtext:find('✔ Did not run it.', 1, true),
    vim.inspect({ result = denied and denied.result, transcript = dtext })
  )
  local sent2 = x('return T.sent[#T.sent]')
  check(
    ':1,2Codenook agent without a task asks for it (vim.ui.input) and sends those lines as the range',
    x('return T.input_prompt') == 'codenook agent: ' and sent2
      and sent2.params.arguments[1].task == 'run the tests'
      and vim.deep_equal(sent2.params.arguments[1].range, r(0, 0, 1, 16)),
    vim.inspect(sent2)
  )
  check(
    'the new transcript replaces the last one in its window (one transcript window)',
    x([[
      local n = 0
      for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
        if vim.b[vim.api.nvim_win_get_buf(w)].codenook_agent then n = n + 1 end
      end
      return n
    ]]) == 1
  )

  local shown = x([[
    vim.cmd('Codenook transcript')
    local name = vim.api.nvim_buf_get_name(0)
    vim.cmd('wincmd p')
    return name
  ]])
  check(
    ':Codenook transcript goes to the last task\'s transcript',
    shown == 'codenook://agent/' .. tostring(denied and denied.result and denied.result.taskId),
    tostring(shown)
  )

  -- :Codenook cancel stops a running task (its work-done progress is cancelled).
  local long = ('thinking about it, '):rep(40)
  main_buf = start_fake({ replies = { long }, step_s = 0.03 })
  local ready2 = wait_for(20000, function()
    return x([[
      local c = T.client()
      local s = c and c.initialized and T.stats()
      return s and s.state == 'idle'
    ]])
  end)
  if ready2 then
    -- Cancelled before its progress began: the request is cancelled ($/cancelRequest).
    x([[
      T.agent = nil
      T.n_notes = #T.notes
      vim.cmd('Codenook agent think for a long time')
      vim.cmd('Codenook cancel')
    ]])
    local early = wait_for(15000, function()
      return x('return T.agent')
    end)
    local enotes = x('return vim.list_slice(T.notes, T.n_notes + 1)')
    check(
      ':Codenook cancel at once cancels the request; the task ends (a warning) and the next may start',
      early and x('return require("codenook.agent").running() == nil')
        and enotes[#enotes] and enotes[#enotes].level == vim.log.levels.WARN
        and enotes[#enotes].msg:find('cancelled', 1, true),
      vim.inspect({ early = early, notes = enotes })
    )
    -- Cancelled while it runs: its work-done progress is cancelled.
    x([[
      T.agent = nil
      T.n_notes = #T.notes
      vim.cmd('Codenook agent think for a long time')
    ]])
    local running = wait_for(10000, function()
      return x([[
        local r = require('codenook.agent').running()
        return r and r.token and r.message and { token = r.token, message = r.message }
      ]])
    end)
    x('vim.cmd("Codenook cancel")')
    local cancelled = wait_for(10000, function()
      return x('return T.agent')
    end)
    local cnotes = x('return vim.list_slice(T.notes, T.n_notes + 1)')
    check(
      ':Codenook cancel cancels the running agent task: status cancelled, a warning',
      running and cancelled and cancelled.result and cancelled.result.status == 'cancelled'
        and cnotes[#cnotes] and cnotes[#cnotes].level == vim.log.levels.WARN
        and cnotes[#cnotes].msg:find('cancelled', 1, true),
      vim.inspect({ running = running, result = cancelled and cancelled.result, notes = cnotes })
    )
    check(
      'after the task: no agent task is running',
      x('return require("codenook.agent").running() == nil')
    )
  else
    check('the scripted server restarts for the cancel test', false)
  end
  x([[
    for _, c in ipairs(vim.lsp.get_clients()) do c:stop(true) end
    vim.wait(5000, function() return #vim.lsp.get_clients() == 0 end, 20)
  ]])
end
agent_e2e()

-- Errors the plugin itself reported during the run.
do
  local errs = x([[
    local out = {}
    for _, n in ipairs(T.notes) do
      if n.level == vim.log.levels.ERROR and not n.msg:find('agent tasks', 1, true) then
        out[#out + 1] = n.msg
      end
    end
    return out
  ]])
  check('no unexpected error notifications', #errs == 0, vim.inspect(errs))
end

finish()
