import EinoCLI

await Eino.runAndExit()
