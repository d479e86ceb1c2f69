"""The layers import downwards only: no import cycle, at run time or under
TYPE_CHECKING, between modules of `stack/` or between subpackages of `conformance/`;
`stack/` imports nothing of the tester (tests/import_graph.py reads the imports)."""

from tests import import_graph


def test_the_import_graph_sees_the_imports_it_judges() -> None:
    edges = import_graph.graph()
    assert "stack.tcp.context" in edges["stack.tcp.arrival"]
    assert "agent_protocol.server" in edges["conformance.agent.linux"]


def test_no_import_cycle_inside_stack() -> None:
    assert import_graph.stack_cycles() == []


def test_no_import_cycle_between_the_testers_subpackages() -> None:
    assert import_graph.conformance_cycles() == []


def test_stack_and_the_agent_protocol_import_nothing_of_the_tester() -> None:
    assert import_graph.imports_from("stack", ["conformance"]) == []
    assert import_graph.imports_from("agent_protocol", ["conformance", "stack"]) == []


def test_a_cycle_is_found() -> None:
    assert import_graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]]
