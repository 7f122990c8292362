"""Language-model agents in StarCraft battles and in multi-agent Crafter.

An LLM-PySC2-style text bridge: text observations, an action grammar and its parser
(:mod:`marl.llm.grammar`), backends that turn prompts into replies (:mod:`marl.llm.backends`),
and the concurrent query loop with timeouts, retries and a cap on requests in flight
(:mod:`marl.llm.query`).
"""
