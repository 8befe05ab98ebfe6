// Pure helpers for the server's commands (workspace/executeCommand). No `vscode` import.

export const AGENT_TASK_COMMAND = 'codenook.agentTask';
export const RUN_ACTION_COMMAND = 'codenook.runAction';

interface Capabilities {
  executeCommandProvider?: { commands?: string[] } | null;
  hoverProvider?: unknown;
}

/** Whether the server lists `command` in executeCommandProvider.commands. */
export function serverHasCommand(caps: Capabilities | undefined, command: string): boolean {
  return !!caps?.executeCommandProvider?.commands?.includes(command);
}

export function agentTaskUnavailableMessage(caps: Capabilities | undefined): string {
  const hint = serverHasCommand(caps, RUN_ACTION_COMMAND)
    ? ' Select code and use the code actions (Ctrl+. / Cmd+.) such as "codenook: Edit with instruction…" instead.'
    : '';
  return (
    'codenook: agent tasks are not available in this server version ' +
    `(it does not offer the ${AGENT_TASK_COMMAND} command).${hint}`
  );
}

/** Agent tasks change files and run for long: never in an untrusted workspace. */
export const AGENT_TASK_RESTRICTED_MESSAGE =
  'codenook: agent tasks are not available in Restricted Mode: this workspace is not trusted. ' +
  'Trust it (Manage Workspace Trust) to run them.';

export interface Position {
  line: number;
  character: number;
}
export interface Range {
  start: Position;
  end: Position;
}

/** The argument object sent with `codenook.agentTask`. */
export function agentTaskArguments(
  task: string,
  uri: string | undefined,
  version: number | undefined,
  selection: Range | undefined,
): unknown[] {
  const arg: Record<string, unknown> = { task: task.trim() };
  if (uri !== undefined) {
    arg.uri = uri;
    if (version !== undefined) {
      arg.version = version;
    }
    if (selection !== undefined) {
      arg.range = selection;
    }
  }
  return [arg];
}

/**
 * The "Edit with instruction…" code action comes from the server as `codenook.runAction`
 * with `{"action": "instruct"}` and no instruction: the client has to ask for it. Returns
 * true for exactly that case.
 */
export function needsInstruction(command: string, args: unknown[] | undefined): boolean {
  if (command !== RUN_ACTION_COMMAND || !args || args.length === 0) {
    return false;
  }
  const first = args[0];
  if (typeof first !== 'object' || first === null) {
    return false;
  }
  const spec = first as Record<string, unknown>;
  return (
    spec.action === 'instruct' &&
    (typeof spec.instruction !== 'string' || spec.instruction.trim() === '')
  );
}

/** The same arguments with the instruction filled in. */
export function withInstruction(args: unknown[], instruction: string): unknown[] {
  const [first, ...rest] = args;
  return [{ ...(first as Record<string, unknown>), instruction: instruction.trim() }, ...rest];
}
