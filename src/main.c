#include <stdio.h>
int main(void) { puts("megatrain"); return 0; }
