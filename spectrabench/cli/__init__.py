"""The Typer command suite. Commands are adapters: parse, call one core function, render."""
