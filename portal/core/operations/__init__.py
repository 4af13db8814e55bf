"""Operations: every long action is a row that workers move to an end, with a log."""
