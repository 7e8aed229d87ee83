"""The bash tool (the API's ``bash_20250124``): one persistent shell per run, in the workspace.

The working directory and exported variables persist between calls of one run. Each command has a
timeout; when it fires, the command and every process it started are killed and the next call gets
a fresh shell. stdin is closed (``/dev/null``), output is bounded (head and tail kept), and bytes
that are not UTF-8 are replaced and flagged. A non-zero exit status makes an ``is_error`` result
(with the output). ``{"restart": true}`` gives a fresh shell. An optional ``CommandPolicy`` refuses
commands before they run; optional ``Limits`` apply to the shell and everything it starts.

This confines the environment and the resources, not the file system: a command can read what the
user running tether can. Paths are confined for the file editor only; isolate with a container.

Cancellation contract: cancelling ``call()`` kills the shell's process group before re-raising.
``aclose()`` kills every shell this tool started; call it when the run ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from tether.api.types import Json, ToolSpec
from tether.tools.base import ToolContext, ToolError, ToolOutput
from tether.tools.output import exit_status, render
from tether.tools.policy import CommandPolicy
from tether.tools.sandbox import Limits, Workspace
from tether.tools.shell import CommandResult, Shell

INPUT_SCHEMA: Json = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "description": "The bash command to run."},
        "restart": {"type": "boolean", "description": "Set to true to restart the shell."},
    },
}


class BashTool:
    name = "bash"
    input_schema = INPUT_SCHEMA
    exclusive = False
    idempotent = False

    def __init__(self, workspace: Workspace, *, command_timeout: float = 120.0, max_output_bytes: int = 30_000,
                 policy: CommandPolicy | None = None, limits: Limits | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.workspace = workspace
        self.command_timeout = command_timeout
        self.max_output_bytes = max_output_bytes
        self.policy = policy
        self.limits = limits
        self.env = workspace.environment(extra={"PAGER": "cat", "GIT_PAGER": "cat", **(env or {})})
        # The runner's own timeout is a backstop: the command's timeout fires first and explains itself.
        self.timeout = command_timeout + 10
        self._shells: dict[str, Shell] = {}

    def spec(self) -> ToolSpec:
        return ToolSpec(name="bash", type="bash_20250124")

    async def call(self, input: Json, context: ToolContext) -> ToolOutput:
        if input.get("restart"):
            await self.aclose(context.run_id)
            return ToolOutput(f"The shell was restarted; the working directory is {self.workspace.root}.")
        command = input.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("give a command to run, or restart: true for a fresh shell")
        if "\x00" in command:
            raise ToolError("the command contains a NUL byte")
        if self.policy is not None and (reason := self.policy.check(command)):
            return ToolOutput(f"Error: the command was not run: {reason}.", True)
        shell = await self._shell(context.run_id)
        result = await shell.run(command, self.command_timeout)
        return self._output(result)

    async def _shell(self, run_id: str) -> Shell:
        if run_id not in self._shells:
            preexec = await asyncio.to_thread(self.limits.preexec) if self.limits else None
            self._shells.setdefault(run_id, Shell(self.workspace.root, self.env,
                                                  max_output_bytes=self.max_output_bytes, preexec=preexec))
        return self._shells[run_id]

    async def aclose(self, run_id: str | None = None) -> None:
        """Kill the shell of ``run_id``, or every shell when None."""
        for key in [run_id] if run_id is not None else list(self._shells):
            shell = self._shells.pop(key, None)
            if shell is not None:
                await shell.aclose()

    def _output(self, result: CommandResult) -> ToolOutput:
        fresh = (f"the next command runs in a fresh shell in {self.workspace.root} "
                 "(working directory and variables reset)")
        if result.timed_out:
            note = (f"the command did not finish within {self.command_timeout:g} seconds; it and every process "
                    f"it started were killed; {fresh}")
            return ToolOutput("Error: " + render(result.stdout, result.stderr, status=note), True)
        if result.status is None:
            note = f"the shell exited ({exit_status(result.shell_status)}); {fresh}"
            return ToolOutput(render(result.stdout, result.stderr, status=note))
        if result.status == 0:
            return ToolOutput(render(result.stdout, result.stderr))
        return ToolOutput(render(result.stdout, result.stderr, status=exit_status(result.status)), True)
