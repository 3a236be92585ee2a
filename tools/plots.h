/* plots.h: megaplot's figures. Each is a self-contained gnuplot script (data inline) written to
   DIR/NAME.gp and run there by gnuplot to draw DIR/NAME.png and DIR/NAME.svg. */
#ifndef MEGATRAIN_PLOTS_H
#define MEGATRAIN_PLOTS_H

#include "tools/runlog.h"
#include "tools/scaling.h"

/* loss against tokens (every run), loss against position (eval --by-position files), throughput
   against ranks and MFU against sequence length (the table's rows). A figure without data is left out with a note on stderr. gnuplot is $GNUPLOT,
   or gnuplot on the PATH; a failure to run it is fatal (exit 1). */
void plots_draw(const char *dir, const RunLog *runs, int nruns, const ScalingTable *t);

#endif
