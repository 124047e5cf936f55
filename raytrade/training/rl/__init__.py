"""RL trading agent, split Qlib-style: simulator, state interpreter, action interpreter, reward."""
