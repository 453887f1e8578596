from edgeclf.cli.main import console

console()
