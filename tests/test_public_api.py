import ingestor


def test_every_exported_name_exists():
    for name in ingestor.__all__:
        assert hasattr(ingestor, name), name


def test_all_lists_public_names_only_once():
    assert len(set(ingestor.__all__)) == len(ingestor.__all__)
    assert all(not n.startswith("_") or n == "__version__" for n in ingestor.__all__)
