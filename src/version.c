const char *megatrain_version(void) { return "0.1.0"; }
