import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StderrTail, startFailureMessage } from '../src/stderr';

test('StderrTail keeps the last lines and picks the one that says what went wrong', () => {
  const tail = new StderrTail(3);
  assert.equal(tail.reason(), undefined);
  tail.push('usage: codenook serve [-h] [--tcp HOST:PORT]\n');
  tail.push('codenook serve: error: unrecognized arguments: --no-such-flag');
  tail.push('   ');
  assert.equal(tail.reason(), 'codenook serve: error: unrecognized arguments: --no-such-flag');
  tail.push('a');
  tail.push('b');
  tail.push('c');
  assert.equal(tail.reason(), 'c', 'only the last 3 lines are kept');
  tail.clear();
  assert.equal(tail.reason(), undefined);
});

test('startFailureMessage prefers what the server said over the client jargon', () => {
  assert.match(
    startFailureMessage('/v/codenook serve', 'Pending response rejected since connection got disposed', 'error: boom'),
    /\(\/v\/codenook serve\): it said: error: boom\. The output channel "codenook" has its full log\./,
  );
  assert.match(
    startFailureMessage('/v/codenook serve', 'Pending response rejected since connection got disposed', undefined),
    /it exited before answering initialize/,
  );
  assert.match(startFailureMessage('x', 'Unsupported position encoding', undefined), /Unsupported position encoding/);
});
