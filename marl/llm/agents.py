"""LLM agents: observation texts in, chat requests out, with a short memory of exchanges.

An agent keeps a system prompt (its role and the reply layout the parser reads) and the last
``history`` exchanges (observation, reply) of the episode, which it sends before the new
observation, as LLM-PySC2's agents keep short-term memory. Everything the agent knows about the
battle is in the texts; the agent itself holds no game logic.
"""

from __future__ import annotations

from marl.llm.backends import Messages, Request

SMAC_SYSTEM_PROMPT = """\
You are {agent}, an AI commander in a StarCraft II battle, in command of these teams of units: \
{teams}. Each turn you read what your teams see and answer with actions for them.
Answer in exactly this layout:
Analysis:
    <a few short lines of reasoning>
Actions:
    Team <team name>:
        <Attack_Unit(0x100030001)>
Communications:
    <MessageTo(<agent name or Channel-1>, '''<message>''')>
Only actions written as <Name(arguments)> below 'Actions:' and above 'Communications:' are \
carried out, at most the number the observation allows per team; use only the valid actions \
and the tags the observation lists. The Communications section is optional."""

CRAFTER_SYSTEM_PROMPT = """\
You are {agent}, a player in Crafter, a 2-D survival world shared with other players: collect \
resources, craft tools, eat, drink and sleep to stay alive, and unlock achievements. Each turn \
you read what you see and answer with your action.
Answer in exactly this layout:
Analysis:
    <a few short lines of reasoning>
Actions:
    Team {teams}:
        <Do()>
Communications:
    <MessageTo(<player name or Channel-1>, '''<message>''')>
Only actions written as <Name()> below 'Actions:' and above 'Communications:' are carried out; \
use only the valid actions the observation lists. The Communications section is optional."""


class LLMAgent:
    """One language-model agent of one battle: builds its requests, remembers its replies."""

    def __init__(self, name: str, system_prompt: str, *, history: int = 1) -> None:
        if not isinstance(history, int) or history < 0:
            raise ValueError(f"history={history!r}: the number of past exchanges to send "
                             "(0 or more)")
        self.name = name
        self.system_prompt = system_prompt
        self.history = history
        self.exchanges: list[tuple[str, str]] = []

    def request(self, key: str, observation: str) -> Request:
        """The chat request for ``observation``: system prompt, past exchanges, observation."""
        messages: Messages = [{"role": "system", "content": self.system_prompt}]
        for seen, said in self.exchanges:  # the last ``history`` exchanges
            messages += [{"role": "user", "content": seen},
                         {"role": "assistant", "content": said}]
        messages.append({"role": "user", "content": observation})
        return Request(key, messages)

    def remember(self, observation: str, reply: str) -> None:
        """Keep an exchange for the next requests (only the last ``history`` are sent)."""
        if self.history:
            self.exchanges = (self.exchanges + [(observation, reply)])[-self.history:]
