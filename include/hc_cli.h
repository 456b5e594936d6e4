/*
 * hc_cli.h - hcmd's command line beside the daemon: list, show, add and
 * remove (src/cli.c), and test (src/diag.c).
 */
#ifndef HC_CLI_H
#define HC_CLI_H

/* 1 if word is one of: list, show, add, remove. */
int hc_cli_is_command(const char *word);
/* Run "hcmd COMMAND ..." (argv[1] is the command). Returns the exit code. */
int hc_cli_main(int argc, char **argv);
/* "hcmd test NAME|HOST:PORT [-c FILE]". Returns the exit code. */
int hc_diag_main(int argc, char **argv);

#endif
