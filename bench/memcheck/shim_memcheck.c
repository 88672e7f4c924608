/* Drives the libtorch shim under valgrind: 3 load/free cycles of the tiny model, 5 runs with two
 * Grad-CAM targets each, and one failing run (wrong input layout) per cycle. See memcheck.sh. */
#include "ctorch.h"
#include <stdio.h>
#include <stdlib.h>
int main(int argc,char**argv){
  ctorch_error err; ctorch_set_num_threads(1);
  int64_t shape[4]={1,32,32,3}; float x[32*32*3]; for(int i=0;i<32*32*3;i++) x[i]=(i%251)/251.f;
  int32_t neg[1]={1}, pos[2]={0,2};
  ctorch_cam_target t[2]={{1,0,0,0,0},{0,pos,2,neg,1}};
  for(int round=0; round<3; round++){
    ctorch_model*m=ctorch_model_load(argv[1],NULL,&err); if(!m){printf("load: %s\n",err.message);return 1;}
    for(int r=0;r<5;r++){ ctorch_result res; if(ctorch_model_run(m,x,shape,4,t,2,&res,&err)){printf("%s\n",err.message);return 1;} ctorch_result_free(&res);}
    int64_t bad[4]={1,3,32,32}; ctorch_result res; ctorch_model_run(m,x,bad,4,t,2,&res,&err); ctorch_result_free(&res);
    ctorch_model_free(m);
  }
  printf("ok: last error was: %s\n", err.message);
  return 0;
}
