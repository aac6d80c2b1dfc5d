from gitsnap.cli.main import entry

entry()
