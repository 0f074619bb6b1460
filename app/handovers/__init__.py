"""Handovers: moving a leaving manager's portfolio through plan, approval and execution."""
