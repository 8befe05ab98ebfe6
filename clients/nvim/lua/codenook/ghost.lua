-- Ghost text drawn with extmarks, for Neovim 0.11 (which has no vim.lsp.inline_completion).
--
-- One state per buffer: a debounce timer, the request in flight, and the suggestion shown.
-- The suggestion is anchored at the cursor; typing its first characters, or accepting part
-- of it, moves the anchor along without waiting for the server (the server answers the next
-- request from the same suggestion anyway, see "typed-through" in docs/architecture.md).

local api = vim.api
local uv = vim.uv or vim.loop

local M = {}

M.ns = api.nvim_create_namespace('codenook.ghost')

local AUTOMATIC, INVOKED = 2, 1 -- lsp.InlineCompletionTriggerKind
local REQUEST_CANCELLED = -32800

---@class codenook.Shown
---@field row integer 0-based row of the anchor (the cursor when shown)
---@field col integer byte column of the anchor
---@field text string what is still to insert; lines separated by "\n"
---@field before string the line left of the anchor when shown
---@field after string the line right of the anchor when shown
---@field replace integer bytes right of the anchor that a full accept replaces (item.range)

---@class codenook.List the items of an explicit (Invoked) answer, for cycling
---@field row integer
---@field col integer
---@field tick integer changedtick when answered: any edit ends the list
---@field items {text: string, replace: integer}[]
---@field index integer the item shown

---@class codenook.GhostState
---@field client_id integer
---@field debounce_ms integer
---@field timer uv.uv_timer_t
---@field seq integer bumped by every request and cancel; an answer counts only if still current
---@field req_id? integer the request in flight
---@field shown? codenook.Shown
---@field list? codenook.List

---@type table<integer, codenook.GhostState>
local states = {}

local function set_highlight()
  api.nvim_set_hl(0, 'CodenookGhost', { link = 'Comment', default = true })
end
set_highlight()
api.nvim_create_autocmd('ColorScheme', {
  group = api.nvim_create_augroup('codenook.ghost.hl', { clear = true }),
  callback = set_highlight,
})

--- Cursor of the current window as (0-based row, byte col) when it shows `buf`.
local function cursor(buf)
  if api.nvim_get_current_buf() ~= buf then
    return nil
  end
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function get_line(buf, row)
  return api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

--- Tabs in virtual text are not expanded by Neovim: expand them for display from `vcol`.
local function expand_tabs(s, vcol, ts)
  if not s:find('\t', 1, true) then
    return s
  end
  local out = {}
  for ch in s:gmatch('[%z\1-\127\194-\244][\128-\191]*') do
    if ch == '\t' then
      local n = ts - (vcol % ts)
      out[#out + 1] = string.rep(' ', n)
      vcol = vcol + n
    else
      out[#out + 1] = ch
      vcol = vcol + vim.fn.strdisplaywidth(ch)
    end
  end
  return table.concat(out)
end

--- The part of `text` that accept_line / accept_word take.
---@param text string
---@param kind 'all'|'line'|'word'
---@return string
function M.piece(text, kind)
  if kind == 'line' then
    local nl = text:find('\n', 1, true)
    if not nl then
      return text
    elseif nl > 1 then
      return text:sub(1, nl - 1)
    end
    -- The suggestion starts with a line break: take it together with the next line.
    local nl2 = text:find('\n', 2, true)
    return nl2 and text:sub(1, nl2 - 1) or text
  elseif kind == 'word' then
    return text:match('^%s*[%w_\128-\255]+')
      or text:match('^%s*[^%w_%s\128-\255]+')
      or text:match('^%s+')
      or text
  end
  return text
end

--- Clear the ghost text of `buf` (the request in flight, if any, stays).
function M.clear(buf)
  buf = buf == 0 and api.nvim_get_current_buf() or buf
  local st = states[buf]
  if st then
    st.shown = nil
    st.list = nil
  end
  if api.nvim_buf_is_valid(buf) then
    api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  end
end

--- Cancel the request in flight and the pending debounce; answers still on their way are ignored.
local function cancel(st)
  st.seq = st.seq + 1
  st.timer:stop()
  if st.req_id then
    local client = vim.lsp.get_client_by_id(st.client_id)
    if client then
      client:cancel_request(st.req_id)
    end
    st.req_id = nil
  end
end

---@param buf integer
---@param row integer
---@param col integer
---@param text string
---@param replace? integer
local function show(buf, row, col, text, replace)
  local st = states[buf]
  api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  local line = get_line(buf, row)
  local ts = vim.bo[buf].tabstop
  local lines = vim.split(text, '\n', { plain = true })
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { expand_tabs(lines[i], 0, ts), 'CodenookGhost' } }
  end
  local first = expand_tabs(lines[1], vim.fn.strdisplaywidth(line:sub(1, col)), ts)
  api.nvim_buf_set_extmark(buf, M.ns, row, col, {
    virt_text = { { first, 'CodenookGhost' } },
    virt_text_pos = 'inline',
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
  })
  st.shown = {
    row = row,
    col = col,
    text = text,
    before = line:sub(1, col),
    after = line:sub(col + 1),
    replace = replace or 0,
  }
end

--- Is the suggestion still valid where the cursor is now? If the user typed its first
--- characters, show the rest at the cursor.
---@return boolean
local function follow(buf)
  local st = states[buf]
  local s = st and st.shown
  if not s then
    return false
  end
  local row, col = cursor(buf)
  if row ~= s.row or col < s.col then
    return false
  end
  local line = get_line(buf, row)
  if line:sub(1, s.col) ~= s.before or line:sub(col + 1) ~= s.after then
    return false
  end
  local typed = line:sub(s.col + 1, col)
  if typed == '' then
    return true
  end
  if s.text:sub(1, #typed) ~= typed or #typed >= #s.text then
    return false
  end
  show(buf, row, col, s.text:sub(#typed + 1), s.replace)
  return true
end

--- The text to show at the cursor for an InlineCompletionItem, and the bytes right of the
--- cursor that it replaces; nil when the item does not fit the cursor.
local function item_text(buf, item, row, col, encoding)
  local text = item.insertText
  if type(text) == 'table' then -- a snippet (StringValue): show and insert its plain text
    local ok, parsed = pcall(function()
      return tostring(require('vim.lsp._snippet_grammar').parse(text.value))
    end)
    text = ok and parsed or text.value
  end
  if type(text) ~= 'string' or text == '' then
    return nil
  end
  local replace = 0
  local r = item.range
  if r then
    if r.start.line ~= row or r['end'].line ~= row then
      return nil
    end
    local line = get_line(buf, row)
    local scol = vim.str_byteindex(line, encoding, r.start.character, false)
    local ecol = vim.str_byteindex(line, encoding, r['end'].character, false)
    if scol > col then
      return nil
    end
    local typed = line:sub(scol + 1, col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    text = text:sub(#typed + 1)
    replace = math.max(0, ecol - col)
  end
  if text == '' then
    return nil
  end
  return text, replace
end

--- Show item `index` of the list (wrapping around at both ends).
local function show_item(buf, index)
  local st = states[buf]
  local list = st.list --[[@as codenook.List]]
  list.index = (index - 1) % #list.items + 1
  local item = list.items[list.index]
  show(buf, list.row, list.col, item.text, item.replace)
end

--- Ask the server now for a suggestion at the cursor.
---@param buf integer
---@param kind? integer lsp.InlineCompletionTriggerKind (default: Automatic)
---@param step? integer with Invoked: the item to show, counted from the one on screen
function M.request(buf, kind, step)
  buf = buf == 0 and api.nvim_get_current_buf() or buf
  local st = states[buf]
  if not st or not in_insert_mode() then
    return
  end
  local row, col = cursor(buf)
  local client = vim.lsp.get_client_by_id(st.client_id)
  if not row or not client then
    return
  end
  -- The server lists the suggestion on screen first: stepping from it is stepping in the list.
  local shown = st.shown
  local from = (shown and shown.row == row and shown.col == col) and (step or 0) or 0
  cancel(st)
  local seq = st.seq
  local tick = api.nvim_buf_get_changedtick(buf)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = kind or AUTOMATIC }
  local ok, id = client:request('textDocument/inlineCompletion', params, function(err, result)
    if st.seq ~= seq or states[buf] ~= st then
      return -- superseded, cancelled or detached
    end
    st.req_id = nil
    if err then
      if err.code ~= REQUEST_CANCELLED then
        vim.lsp.log.warn('codenook: inlineCompletion failed', err)
      end
      return
    end
    local r, c = cursor(buf)
    if
      not in_insert_mode()
      or r ~= row
      or c ~= col
      or api.nvim_buf_get_changedtick(buf) ~= tick
    then
      return -- the buffer or the cursor moved on; the next request is on its way
    end
    local items = {}
    for _, item in ipairs(type(result) == 'table' and (result.items or result) or {}) do
      local text, replace = item_text(buf, item, row, col, client.offset_encoding)
      if text then
        items[#items + 1] = { text = text, replace = replace }
      end
    end
    if #items == 0 then
      M.clear(buf)
    elseif kind == INVOKED then
      st.list = { row = row, col = col, tick = tick, items = items, index = 1 }
      show_item(buf, 1 + from)
    else
      st.list = nil
      show(buf, row, col, items[1].text, items[1].replace)
    end
  end, buf)
  if ok then
    st.req_id = id
  end
end

--- Ask for a suggestion now (a manual trigger, "Invoked").
function M.trigger(buf)
  M.request(buf == 0 and api.nvim_get_current_buf() or buf, INVOKED)
end

--- Show the next (`delta` 1) or previous (-1) suggestion of the list at the cursor; without
--- one, ask the server for the list (Invoked) and step from the suggestion on screen.
---@return boolean handled false when `buf` has no ghost text here (the caller uses the key)
function M.cycle(buf, delta)
  buf = buf == 0 and api.nvim_get_current_buf() or buf
  local st = states[buf]
  if not st or not in_insert_mode() then
    return false
  end
  local row, col = cursor(buf)
  local list = st.list
  if
    list
    and st.shown
    and list.row == row
    and list.col == col
    and list.tick == api.nvim_buf_get_changedtick(buf)
  then
    show_item(buf, list.index + delta)
  else
    M.request(buf, INVOKED, delta)
  end
  return true
end

--- Which item of the list is shown and how many there are; nil without a list.
---@return {index: integer, count: integer}?
function M.position(buf)
  local st = states[buf == 0 and api.nvim_get_current_buf() or buf]
  local list = st and st.shown and st.list
  return list and { index = list.index, count = #list.items } or nil
end

---@return boolean
function M.visible(buf)
  local st = states[buf == 0 and api.nvim_get_current_buf() or buf]
  return st ~= nil and st.shown ~= nil
end

--- The suggestion shown in `buf`, or nil.
---@return codenook.Shown?
function M.shown(buf)
  local st = states[buf == 0 and api.nvim_get_current_buf() or buf]
  return st and st.shown
end

--- Insert all of the suggestion, its next line or its next word at the cursor.
---@param buf integer
---@param kind 'all'|'line'|'word'
---@return boolean accepted false when nothing was shown (the caller falls back to the key)
function M.accept(buf, kind)
  buf = buf == 0 and api.nvim_get_current_buf() or buf
  local st = states[buf]
  if not st or not st.shown or not follow(buf) then
    M.clear(buf)
    return false
  end
  local s = st.shown --[[@as codenook.Shown]]
  local piece = kind == 'all' and s.text or M.piece(s.text, kind)
  local rest = s.text:sub(#piece + 1)
  cancel(st)
  -- Its own undo step: `u` after accepting removes the suggestion, not what was typed before.
  vim.cmd('let &g:undolevels = &g:undolevels')
  local lines = vim.split(piece, '\n', { plain = true })
  local replace = rest == '' and s.replace or 0
  api.nvim_buf_set_text(buf, s.row, s.col, s.row, s.col + replace, lines)
  local row = s.row + #lines - 1
  local col = (#lines == 1 and s.col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { row + 1, col })
  if rest ~= '' then
    show(buf, row, col, rest, s.replace)
  else
    M.clear(buf)
  end
  return true
end

local function on_text_changed(buf)
  local st = states[buf]
  if not follow(buf) then
    M.clear(buf)
  end
  cancel(st)
  st.timer:start(
    st.debounce_ms,
    0,
    vim.schedule_wrap(function()
      if states[buf] == st then
        M.request(buf, AUTOMATIC)
      end
    end)
  )
end

local function stop(buf)
  local st = states[buf]
  if st then
    cancel(st)
    M.clear(buf)
  end
end

--- Show ghost text in `buf` from the codenook client `client_id`.
---@param buf integer
---@param client_id integer
---@param opts {debounce_ms: integer}
function M.attach(buf, client_id, opts)
  local st = states[buf]
  if st then
    st.client_id = client_id
    st.debounce_ms = opts.debounce_ms
    return
  end
  states[buf] = {
    client_id = client_id,
    debounce_ms = opts.debounce_ms,
    timer = assert(uv.new_timer()),
    seq = 0,
  }
  local group = api.nvim_create_augroup('codenook.ghost.' .. buf, { clear = true })
  api.nvim_create_autocmd('TextChangedI', {
    group = group,
    buffer = buf,
    callback = function()
      on_text_changed(buf)
    end,
  })
  api.nvim_create_autocmd('CursorMovedI', {
    group = group,
    buffer = buf,
    callback = function()
      if not follow(buf) then
        M.clear(buf)
      end
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = buf,
    callback = function()
      stop(buf)
    end,
  })
  api.nvim_create_autocmd({ 'BufUnload', 'BufWipeout' }, {
    group = group,
    buffer = buf,
    callback = function()
      M.detach(buf)
    end,
  })
end

function M.detach(buf)
  local st = states[buf]
  if not st then
    return
  end
  stop(buf)
  states[buf] = nil
  if not st.timer:is_closing() then
    st.timer:close()
  end
  pcall(api.nvim_del_augroup_by_name, 'codenook.ghost.' .. buf)
end

function M.attached(buf)
  return states[buf] ~= nil
end

return M
