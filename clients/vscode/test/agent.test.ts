import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  agentUndoArguments,
  changeItems,
  diffTitle,
  originalKey,
  Originals,
  parseAgentResult,
  parseTranscriptEntry,
  parseUndoResult,
  progressMessage,
  resultMessage,
  TranscriptWriter,
  undoMessage,
} from '../src/agent';

const entry = (kind: string, text: string, taskId = 't1') => ({ taskId, kind, text });

test('transcript entries are read only when they have a taskId, a kind and a text', () => {
  assert.deepEqual(parseTranscriptEntry({ taskId: 't1', kind: 'call', text: 'read_file path=a.py', extra: 1 }), entry('call', 'read_file path=a.py'));
  for (const bad of [null, 'x', {}, { taskId: 't1', kind: 'call' }, { taskId: 1, kind: 'call', text: '' }]) {
    assert.equal(parseTranscriptEntry(bad), undefined, JSON.stringify(bad));
  }
});

test('the transcript: model deltas inline, every other entry on its own prefixed line', () => {
  const w = new TranscriptWriter();
  let out = '';
  for (const e of [
    entry('task', 'rename old_name'),
    entry('model', 'I will '),
    entry('model', 'read main.py.'),
    entry('call', 'read_file path=main.py'),
    entry('result', 'def old_name():\n    pass\n'),
    entry('model', 'Now edit.\n'),
    entry('call', 'edit_file path=main.py'),
    entry('error', 'old_text not found'),
    entry('status', 'step 3'),
    entry('summary', 'Renamed old_name to new_name.'),
  ]) {
    out += w.write(e);
  }
  assert.equal(
    out,
    [
      '■ task: rename old_name',
      'I will read main.py.',
      '▶ read_file path=main.py',
      '◀ def old_name():',
      '      pass', // continuation lines indented under the prefix
      'Now edit.',
      '▶ edit_file path=main.py',
      '✖ old_text not found',
      '· step 3',
      '✔ Renamed old_name to new_name.',
      '',
    ].join('\n'),
  );
});

test('the transcript: a new task after a blank line; an unknown kind keeps its name; another task\'s delta is marked', () => {
  const w = new TranscriptWriter();
  let out = w.write(entry('task', 'first'));
  out += w.write(entry('model', 'thinking'));
  out += w.write(entry('task', 'second', 't2'));
  out += w.write(entry('thought', 'hmm', 't2'));
  out += w.write(entry('model', 'more', 't1'));
  out += w.write(entry('model', '', 't2'));
  assert.equal(out, '■ task: first\nthinking\n\n■ task: second\nthought: hmm\n[task t1] more');
});

test('the progress message follows calls, statuses and errors, shortened', () => {
  assert.equal(progressMessage(entry('call', 'read_file path=a.py\nmore')), '▶ read_file path=a.py');
  assert.equal(progressMessage(entry('status', 'waiting for your OK to run `pytest -x`')), 'waiting for your OK to run `pytest -x`');
  assert.equal(progressMessage(entry('model', 'abc')), 'the model is writing…');
  assert.equal(progressMessage(entry('result', 'lots')), undefined);
  assert.equal(progressMessage(entry('task', 'x')), undefined);
  const long = progressMessage(entry('error', 'x'.repeat(200)), 20);
  assert.equal(long?.length, 20);
  assert.ok(long?.endsWith('…'));
});

const RESULT = {
  taskId: 't1',
  status: 'done',
  summary: 'Renamed old_name to new_name.',
  message: 'done in 3 steps',
  steps: 3,
  changes: [
    { uri: 'file:///w/main.py', path: 'main.py', created: false, original: 'def old_name():\n' },
    { uri: 'file:///w/new.py', path: 'new.py', created: true, original: null },
  ],
};

test('the task\'s answer is read; changes without a uri are dropped', () => {
  assert.deepEqual(parseAgentResult(RESULT), RESULT);
  const odd = parseAgentResult({ taskId: 't', status: 'failed', changes: [{ path: 'x' }, { uri: 'file:///a' }, 3] });
  assert.deepEqual(odd, {
    taskId: 't',
    status: 'failed',
    summary: '',
    message: '',
    steps: 0,
    changes: [{ uri: 'file:///a', path: 'file:///a', created: true, original: null }],
  });
  assert.equal(parseAgentResult({ message: 'done' }), undefined);
  assert.equal(parseAgentResult('done'), undefined);
  assert.equal(parseAgentResult(null), undefined);
});

test('done: the summary with "Show changes" and "Undo task" when files changed', () => {
  const done = resultMessage(parseAgentResult(RESULT)!);
  assert.deepEqual(done, {
    level: 'info',
    text: 'codenook: Renamed old_name to new_name. (2 files changed, unsaved)',
    buttons: ['Show changes', 'Undo task'],
  });
  const nothing = resultMessage({ ...parseAgentResult(RESULT)!, changes: [] });
  assert.deepEqual(nothing, { level: 'info', text: 'codenook: Renamed old_name to new_name.', buttons: [] });
  const noSummary = resultMessage({ ...parseAgentResult(RESULT)!, summary: '', changes: [] });
  assert.equal(noSummary.text, 'codenook: done in 3 steps');
});

test('cancelled, failed, budget: a warning with the server\'s message', () => {
  const base = { ...parseAgentResult(RESULT)!, changes: [] };
  assert.deepEqual(resultMessage({ ...base, status: 'cancelled', message: 'cancelled at step 2' }), {
    level: 'warning',
    text: 'codenook: the agent task was cancelled: cancelled at step 2',
    buttons: [],
  });
  assert.equal(resultMessage({ ...base, status: 'failed', message: 'the model failed' }).text, 'codenook: the agent task failed: the model failed');
  assert.equal(resultMessage({ ...base, status: 'budget', message: 'step limit 30' }).text, 'codenook: the agent task ran out of budget: step limit 30');
  assert.equal(resultMessage({ ...base, status: 'odd', message: '', summary: '' }).text, 'codenook: the agent task ended (odd).');
  // Files it had changed before it stopped can still be seen and undone.
  const partial = resultMessage({ ...parseAgentResult(RESULT)!, status: 'cancelled' });
  assert.equal(partial.level, 'warning');
  assert.deepEqual(partial.buttons, ['Show changes', 'Undo task']);
});

test('"Show changes" items name the files, created ones marked', () => {
  const items = changeItems(RESULT.changes);
  assert.deepEqual(
    items.map((i) => [i.label, i.description]),
    [
      ['main.py', 'changed'],
      ['new.py', 'created'],
    ],
  );
  assert.equal(items[0].change, RESULT.changes[0]);
  assert.match(diffTitle(RESULT.changes[0]), /^main\.py \(before the agent task/);
});

test('originals are kept by task and file, for the last tasks only', () => {
  const originals = new Originals(2);
  originals.add(parseAgentResult(RESULT)!);
  assert.equal(originals.get(originalKey('t1', 0)), 'def old_name():\n');
  assert.equal(originals.get(originalKey('t1', 1)), undefined, 'a created file has no original');
  originals.add({ ...parseAgentResult(RESULT)!, taskId: 't2' });
  originals.add({ ...parseAgentResult(RESULT)!, taskId: 't3' });
  assert.equal(originals.get(originalKey('t1', 0)), undefined, 'the oldest task is forgotten');
  assert.equal(originals.get(originalKey('t3', 0)), 'def old_name():\n');
  assert.notEqual(originalKey('a&file=1', 0), originalKey('a', 1));
});

test('undo: arguments, answer and message', () => {
  assert.deepEqual(agentUndoArguments('t1'), [{ taskId: 't1' }]);
  assert.deepEqual(agentUndoArguments(undefined), [{}]);
  const ok = parseUndoResult({ restored: ['file:///w/main.py'], refused: [], message: '' })!;
  assert.deepEqual(undoMessage(ok), { level: 'info', text: 'codenook: undo: restored 1 file.' });
  const refused = parseUndoResult({
    restored: [],
    refused: [{ uri: 'file:///w/a.py', path: 'a.py', reason: 'changed since the task' }],
  })!;
  assert.deepEqual(undoMessage(refused), {
    level: 'warning',
    text: 'codenook: undo: not restored: a.py (changed since the task).',
  });
  const said = parseUndoResult({ restored: ['file:///w/main.py'], refused: [{ uri: 'file:///w/b.py' }], message: 'Restored main.py; b.py changed since.' })!;
  assert.deepEqual(said.refused, [{ uri: 'file:///w/b.py', path: 'file:///w/b.py', reason: '' }]);
  assert.deepEqual(undoMessage(said), { level: 'warning', text: 'codenook: Restored main.py; b.py changed since.' });
  assert.equal(parseUndoResult({ other: 1 }), undefined);
  assert.equal(parseUndoResult(null), undefined);
});
