#!/bin/bash
# Side by side: official test.py vs avslkit eval with the presets, on DATA ($1). Prints one summary line per case.
set -e
D=$1
H=$(cd "$(dirname "$0")" && pwd)
M=$D/metadata
[ -f $D/store.h5 ] || avslkit preprocess $D --out $D/store.h5 --preset slavc-test --labels $M/vggss.json --workers 0 -q
summ() { python - "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(sys.argv[2], "n=%d" % r["n"], "7x7=%g" % r["maps_7x7_max_abs_diff"], "224=%g" % r["maps_224_max_abs_diff"],
      "ciou=%g" % r["ciou_max_abs_diff"], "conf=%g" % r.get("confidence_max_abs_diff", 0), "metrics=%g" % r["max_metric_abs_diff"],
      "(%d metrics)" % len([v for v in r["metrics"].values() if isinstance(v, dict)]))
PY
}
case_slavc() {  # name testset ann plus_csv test_list "official args" "avslkit args"
  local name=$1 ts=$2 ann=$3 csv=$4 list=$5 oargs=$6 aargs=$7
  python $H/run_official.py slavc $D $ts $D/off_$name.npz --alpha 0.9 $oargs > $D/off_$name.log 2>&1
  avslkit --quiet eval $D/ckpt/slavc/latest.pth --test $D/store.h5 --annotations $ann --test-list $list --extended-csv $csv --save-maps --out $D/ak_$name.json $aargs > /dev/null 2>$D/ak_$name.log
  python $H/compare.py $D slavc $ts $D/off_$name.npz $D/ak_$name.json > $D/cmp_$name.json
  summ $D/cmp_$name.json $name
}
case_ezvsl() {  # name testset ann test_list
  local name=$1 ts=$2 ann=$3 list=$4
  python $H/run_official.py ezvsl $D $ts $D/off_$name.npz --alpha 0.4 > $D/off_$name.log 2>&1
  avslkit --quiet eval $D/ckpt/ezvsl/best.pth --test $D/store.h5 --annotations $ann --test-list $list --save-maps --out $D/ak_$name.json > /dev/null 2>$D/ak_$name.log
  python $H/compare.py $D ezvsl $ts $D/off_$name.npz $D/ak_$name.json > $D/cmp_$name.json
  summ $D/cmp_$name.json $name
}
case_slavc slavc_vggss_script vggss_plus_silent $M/vggss.json $M/vggss_test_plus_silent.csv $M/vggss_test.csv "" ""
case_slavc slavc_vggss_readme_mom vggss_plus_silent $M/vggss.json $M/vggss_test_plus_silent.csv $M/vggss_test.csv "--relative_prediction --use_mom_eval" "--binarize relative --set inference.use_momentum_eval=true"
case_slavc slavc_flickr_script flickr_plus_silent $D/Annotations $M/flickr_test_plus_silent.csv $M/flickr_test.csv "" ""
case_ezvsl ezvsl_vggss vggss $M/vggss.json $M/vggss_test.csv
case_ezvsl ezvsl_flickr flickr $D/Annotations $M/flickr_test.csv
