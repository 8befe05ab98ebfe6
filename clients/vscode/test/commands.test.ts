import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  agentTaskArguments,
  agentTaskUnavailableMessage,
  needsInstruction,
  serverHasCommand,
  withInstruction,
} from '../src/commands';

test('serverHasCommand reads executeCommandProvider.commands', () => {
  assert.equal(serverHasCommand({ executeCommandProvider: { commands: ['codenook.agentTask'] } }, 'codenook.agentTask'), true);
  assert.equal(serverHasCommand({ executeCommandProvider: { commands: ['codenook.runAction'] } }, 'codenook.agentTask'), false);
  assert.equal(serverHasCommand({}, 'codenook.agentTask'), false);
  assert.equal(serverHasCommand(undefined, 'codenook.agentTask'), false);
});

test('the "not available" message says why and points at code actions when the server has them', () => {
  const plain = agentTaskUnavailableMessage({});
  assert.match(plain, /not available in this server version/);
  assert.doesNotMatch(plain, /code actions/);
  const withActions = agentTaskUnavailableMessage({ executeCommandProvider: { commands: ['codenook.runAction'] } });
  assert.match(withActions, /Edit with instruction/);
});

test('agent task arguments carry the task, the document and the selection', () => {
  const range = { start: { line: 1, character: 0 }, end: { line: 3, character: 4 } };
  assert.deepEqual(agentTaskArguments('  add tests  ', 'file:///a.py', 7, range), [
    { task: 'add tests', uri: 'file:///a.py', version: 7, range },
  ]);
  assert.deepEqual(agentTaskArguments('x', undefined, undefined, undefined), [{ task: 'x' }]);
});

test('the instruct code action needs an instruction from the client', () => {
  const args = [{ uri: 'file:///a.py', version: 3, action: 'instruct', range: {} }];
  assert.equal(needsInstruction('codenook.runAction', args), true);
  assert.equal(needsInstruction('codenook.runAction', [{ ...args[0], instruction: 'make it faster' }]), false);
  assert.equal(needsInstruction('codenook.runAction', [{ ...args[0], action: 'docstring' }]), false);
  assert.equal(needsInstruction('other.command', args), false);
  assert.equal(needsInstruction('codenook.runAction', []), false);
  assert.equal(needsInstruction('codenook.runAction', undefined), false);
  assert.deepEqual(withInstruction(args, ' use a dict '), [{ ...args[0], instruction: 'use a dict' }]);
});
